"""The only place we touch Dagster's private API; `tests/test_dagster_private.py` pins its contract.

- Dagster has no public call that validates an instance config file without starting the
  instance (its storage, launcher and coordinator); the deployment checks need exactly that.
- `Definitions.validate_loadable` reads the "defs state" of whatever instance the process last
  entered (a context variable); a disposed instance left there makes it fail with "undefined
  DagsterInstance weakref". Validating a module's definitions must not depend on that.
- The run launcher (`etl_assets/run_worker.py`): Dagster exports `DefaultRunLauncher` but not
  the base class, the health-check result types or the serialized arguments of
  `dagster api execute_run` that every custom launcher needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.instance.config import dagster_instance_config
from dagster._core.launcher import LaunchRunContext, RunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.defs_state.base import set_defs_state_storage
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData


@contextmanager
def without_instance_state() -> Iterator[None]:
    """Load definitions as a fresh process would: with no instance's defs state."""
    with set_defs_state_storage(None):
        yield


def validate_instance_config(folder: str, filename: str = "dagster.yaml") -> dict:
    """Dagster's own validation of an instance config file (storage, launcher, coordinator...)."""
    config, _ = dagster_instance_config(folder, filename)
    return config


__all__ = [
    "CheckRunHealthResult",
    "ConfigurableClass",
    "ConfigurableClassData",
    "ExecuteRunArgs",
    "LaunchRunContext",
    "RunLauncher",
    "WorkerStatus",
    "validate_instance_config",
    "without_instance_state",
]
