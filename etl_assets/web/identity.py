"""Who is signed in (`Principal`) and how their groups become roles (`RoleMapping`).

The mapping file (`DM_WEB_ROLES_FILE`, YAML) names roles per group and per user, the roles every
signed-in user gets, and the roles a module's listed `owners` get on that module::

    groups: {dm-admins: [admin], etl-operators: [task_manager]}
    users: {ana@example.org: [data_manager]}
    default: [viewer]
    module_owners: [task_manager]

Without a file, a group named like a role grants that role and everyone else is a viewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from etl_assets.web.roles import Role


class RoleMappingError(ValueError):
    """The role mapping file is not valid (names the file, the field and what was expected)."""


class RoleMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: dict[str, list[Role]] = {}
    users: dict[str, list[Role]] = {}
    default: list[Role] = [Role.VIEWER]
    module_owners: list[Role] = []
    by_role_name: bool = False  # a group named like a role grants it (the no-file default)

    @classmethod
    def load(cls, path: Path | None) -> RoleMapping:
        if path is None:
            return cls(by_role_name=True)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise RoleMappingError(f"{path}: cannot read the role mapping: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            roles = ", ".join(r.value for r in Role)
            raise RoleMappingError(
                f"{path}: {where}: {first['msg']} (roles are: {roles})"
            ) from None

    def roles_for(self, user: str, email: str | None, groups: list[str]) -> frozenset[Role]:
        roles = set(self.default)
        for name in (user, email):
            if name:
                roles.update(self.users.get(name, []))
        for group in groups:
            roles.update(self.groups.get(group, []))
            if self.by_role_name and group in Role._value2member_map_:
                roles.add(Role(group))
        return frozenset(roles)


@dataclass(frozen=True)
class Principal:
    """A signed-in user: global roles, plus `owner_roles` on the modules whose `owners` list one
    of `owner_ids` (their email, or `team:<group>`)."""

    name: str
    email: str | None = None
    roles: frozenset[Role] = frozenset()
    groups: tuple[str, ...] = ()
    owner_roles: frozenset[Role] = frozenset()
    mode: str = "local"
    owner_ids: frozenset[str] = field(default=frozenset())

    @classmethod
    def build(
        cls, mapping: RoleMapping, name: str, email: str | None, groups: list[str], mode: str
    ) -> Principal:
        ids = {email} if email else set()
        ids.update(f"team:{g}" for g in groups)
        return cls(
            name=name,
            email=email,
            roles=mapping.roles_for(name, email, groups),
            groups=tuple(groups),
            owner_roles=frozenset(mapping.module_owners),
            mode=mode,
            owner_ids=frozenset(ids),
        )

    @property
    def role_label(self) -> str:
        """The roles as one string for the audit log (e.g. "admin" or "task_manager+viewer")."""
        return "+".join(sorted(r.value for r in self.roles)) or "none"

    def to_claims(self) -> dict:
        return {
            "name": self.name,
            "email": self.email,
            "roles": sorted(r.value for r in self.roles),
            "groups": list(self.groups),
            "owner_roles": sorted(r.value for r in self.owner_roles),
            "mode": self.mode,
        }

    @classmethod
    def from_claims(cls, claims: dict) -> Principal:
        email = claims.get("email")
        groups = list(claims.get("groups", []))
        ids = {email} if email else set()
        ids.update(f"team:{g}" for g in groups)
        return cls(
            name=claims["name"],
            email=email,
            roles=frozenset(Role(r) for r in claims.get("roles", [])),
            groups=tuple(groups),
            owner_roles=frozenset(Role(r) for r in claims.get("owner_roles", [])),
            mode=claims.get("mode", "oidc"),
            owner_ids=frozenset(ids),
        )


ANONYMOUS = Principal(name="anonymous", mode="none")
