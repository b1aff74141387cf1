"""The only place we touch Dagster's private API; `tests/test_dagster_private.py` pins its contract.

- Dagster has no public call that validates an instance config file without starting the
  instance (its storage, launcher and coordinator); the deployment checks need exactly that.
- `Definitions.validate_loadable` reads the "defs state" of whatever instance the process last
  entered (a context variable); a disposed instance left there makes it fail with "undefined
  DagsterInstance weakref". Validating a module's definitions must not depend on that.
- The run launcher (`etl_assets/run_worker.py`): Dagster exports `DefaultRunLauncher` but not
  the base class, the health-check result types or the serialized arguments of
  `dagster api execute_run` that every custom launcher needs.
- Run control (`etl_assets/orchestration/control.py`) does what the UI's GraphQL resolvers do:
  Dagster 1.13 has no public API to load a workspace, find a job's remote representation, or
  re-execute a run from failure through the run launcher (`ReexecutionOptions` only works with
  in-process `execute_job`), so it uses the workspace context, the job selector and the
  re-execution strategy the resolvers use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.execution.plan.resume_retry import ReexecutionStrategy
from dagster._core.instance.config import dagster_instance_config
from dagster._core.launcher import LaunchRunContext, RunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.remote_representation.external import RemoteSchedule, RemoteSensor
from dagster._core.storage.defs_state.base import set_defs_state_storage
from dagster._core.workspace.context import BaseWorkspaceRequestContext, WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData

__all__ = [
    "BaseWorkspaceRequestContext",
    "CheckRunHealthResult",
    "ConfigurableClass",
    "ConfigurableClassData",
    "ExecuteRunArgs",
    "JobSubsetSelector",
    "LaunchRunContext",
    "ReexecutionStrategy",
    "RemoteSchedule",
    "RemoteSensor",
    "RunLauncher",
    "WorkerStatus",
    "WorkspaceFileTarget",
    "WorkspaceProcessContext",
    "validate_instance_config",
    "without_instance_state",
    "workspace_from_file",
]


@contextmanager
def without_instance_state() -> Iterator[None]:
    """Load definitions as a fresh process would: with no instance's defs state."""
    with set_defs_state_storage(None):
        yield


def validate_instance_config(folder: str, filename: str = "dagster.yaml") -> dict:
    """Dagster's own validation of an instance config file (storage, launcher, coordinator...)."""
    config, _ = dagster_instance_config(folder, filename)
    return config


@contextmanager
def workspace_from_file(instance, path: str) -> Iterator[BaseWorkspaceRequestContext]:
    """The code locations of a workspace file, loaded as `dagster-webserver -w path` would."""
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[path])) as process:
        yield process.create_request_context()
