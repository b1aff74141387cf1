"""Every Dagster-private name the web layer uses, in one place; tests/test_web_dagster_internals.py
pins the contract (names, signatures, the permission enum), so a Dagster upgrade that changes
them fails there, not in production.

Dagster 1.13 has no public API for per-request permissions or for wrapping its webserver: the
hooks are `WorkspaceProcessContext.create_request_context`, a `WorkspaceRequestContext` whose
`permissions*` we override, and `DagsterWebserver`'s GraphQL endpoints. Nor for launching a job
of a code location through the instance from a server process (the console does):
`launch_job` takes the path Dagster's own `launchRun` mutation takes.
"""

from __future__ import annotations

from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.storage.tags import USER_TAG
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._core.workspace.permissions import (
    LOCATION_SCOPED_PERMISSIONS,
    PermissionResult,
    Permissions,
)
from dagster_graphql.implementation.execution.run_lifecycle import create_valid_pipeline_run
from dagster_graphql.implementation.utils import ExecutionMetadata, ExecutionParams
from dagster_graphql.schema import create_schema
from dagster_webserver.version import __version__ as webserver_version
from dagster_webserver.webserver import DagsterWebserver

__all__ = [
    "LOCATION_SCOPED_PERMISSIONS",
    "USER_TAG",
    "DagsterWebserver",
    "JobSubsetSelector",
    "PermissionResult",
    "Permissions",
    "WorkspaceFileTarget",
    "WorkspaceProcessContext",
    "WorkspaceRequestContext",
    "graphql_schema",
    "launch_job",
    "webserver_version",
]


def graphql_schema():
    """Dagster's GraphQL schema (graphql-core), e.g. to list its mutations."""
    return create_schema().graphql_schema


class JobNotFound(LookupError):
    """No loaded code location has the job."""


def _repositories(context: WorkspaceRequestContext):
    for location_name in context.code_location_names:
        try:
            location = context.get_code_location(location_name)
        except Exception:  # a location that failed to load or is still loading
            continue
        for repo_name, repo in location.get_repositories().items():
            yield location_name, repo_name, repo


def launch_job(context: WorkspaceRequestContext, job_name: str, tags: dict[str, str]) -> str:
    """Create a run of `job_name` with `tags` and submit it through the instance's run
    coordinator (queued for the daemon, or launched at once without one); the run id."""
    for location_name, repo_name, repo in _repositories(context):
        if repo.has_job(job_name):
            selector = JobSubsetSelector(location_name, repo_name, job_name, None)
            remote_job = context.get_full_job(selector)
            params = ExecutionParams(
                selector=selector, run_config={}, mode=None, step_keys=None,
                execution_metadata=ExecutionMetadata(run_id=None, tags=tags),
            )  # fmt: skip
            run = create_valid_pipeline_run(context, remote_job, params)
            context.instance.submit_run(run.run_id, workspace=context)
            return run.run_id
    raise JobNotFound(f"no loaded code location has a job named {job_name!r}")
