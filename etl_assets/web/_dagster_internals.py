"""Every Dagster-private name the web layer uses, in one place; tests/test_web_dagster_internals.py
pins the contract (names, signatures, the permission enum), so a Dagster upgrade that changes
them fails there, not in production.

Dagster 1.13 has no public API for per-request permissions or for wrapping its webserver: the
hooks are `WorkspaceProcessContext.create_request_context`, a `WorkspaceRequestContext` whose
`permissions*` we override, and `DagsterWebserver`'s GraphQL endpoints.
"""

from __future__ import annotations

from dagster._core.storage.tags import USER_TAG
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._core.workspace.permissions import (
    LOCATION_SCOPED_PERMISSIONS,
    PermissionResult,
    Permissions,
)
from dagster_graphql.schema import create_schema
from dagster_webserver.version import __version__ as webserver_version
from dagster_webserver.webserver import DagsterWebserver

__all__ = [
    "LOCATION_SCOPED_PERMISSIONS",
    "USER_TAG",
    "DagsterWebserver",
    "PermissionResult",
    "Permissions",
    "WorkspaceFileTarget",
    "WorkspaceProcessContext",
    "WorkspaceRequestContext",
    "graphql_schema",
    "webserver_version",
]


def graphql_schema():
    """Dagster's GraphQL schema (graphql-core), e.g. to list its mutations."""
    return create_schema().graphql_schema
