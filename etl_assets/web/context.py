"""Roles become Dagster's per-request permissions: every request gets a `RoleRequestContext`
built from the signed-in `Principal`, so Dagster's own resolvers enforce the role and the UI
greys out what it may not do. A request without a principal (Dagster's reload mutations create
contexts with `source=None`) gets the least privileges: none.
"""

from __future__ import annotations

from collections.abc import Mapping

from etl_assets.web._dagster_internals import (
    LOCATION_SCOPED_PERMISSIONS,
    USER_TAG,
    PermissionResult,
    Permissions,
    WorkspaceProcessContext,
    WorkspaceRequestContext,
)
from etl_assets.web.identity import ANONYMOUS, Principal
from etl_assets.web.roles import dagster_permissions

PRINCIPAL_KEY = "dm.principal"  # where the sign-in middleware puts the Principal in the scope
REPORTING_USER_TAG = "dagster/reporting_user"


def principal_of(source: object | None) -> Principal:
    scope = getattr(source, "scope", None)
    if isinstance(scope, Mapping):
        found = scope.get(PRINCIPAL_KEY)
        if isinstance(found, Principal):
            return found
    return ANONYMOUS


def permission_map(granted: frozenset, label: str) -> dict[str, PermissionResult]:
    """Every Dagster permission (a missing one makes Dagster answer HTTP 500), on or off."""
    reason = f"Your role ({label}) may not do this"
    return {
        p: PermissionResult(enabled=p in granted, disabled_reason=None if p in granted else reason)
        for p in Permissions
    }


class RoleRequestContext(WorkspaceRequestContext):
    """A request's view of the workspace with the permissions of its principal's roles."""

    def __init__(self, *args, principal: Principal, **kwargs):
        super().__init__(*args, **kwargs)
        self.principal = principal
        label = principal.role_label
        self._global = permission_map(dagster_permissions(principal.roles), label)
        self._owner = {
            p: r
            for p, r in permission_map(
                dagster_permissions(principal.roles | principal.owner_roles), label
            ).items()
            if p in LOCATION_SCOPED_PERMISSIONS
        }

    @property
    def permissions(self) -> Mapping[str, PermissionResult]:
        return self._global

    def permissions_for_location(self, *, location_name: str) -> Mapping[str, PermissionResult]:
        return {p: r for p, r in self._global.items() if p in LOCATION_SCOPED_PERMISSIONS}

    def permissions_for_owner(self, *, owner: str) -> Mapping[str, PermissionResult]:
        return self._owner if owner in self.principal.owner_ids else {}

    def viewer_has_any_owner_definition_permissions(self) -> bool:
        return bool(self.principal.owner_roles and self.principal.owner_ids)

    def get_viewer_tags(self) -> dict[str, str]:
        return {USER_TAG: self.principal.name}

    def get_reporting_user_tags(self) -> dict[str, str]:
        return {REPORTING_USER_TAG: self.principal.name}


class RoleProcessContext(WorkspaceProcessContext):
    """The webserver's process context: request contexts carry the request's principal."""

    def create_request_context(self, source: object | None = None) -> RoleRequestContext:
        principal = principal_of(source)
        return RoleRequestContext(
            instance=self.instance,
            current_workspace=self.get_current_workspace(),
            process_context=self,
            version=self.version,
            source=source,
            read_only=not dagster_permissions(principal.roles | principal.owner_roles),
            principal=principal,
        )
