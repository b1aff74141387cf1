"""The privacy zones in PostgreSQL: which role may read which schema.

Each module publishes into its schema (`dm_<module>` by default) and keeps what is restricted —
the quarantine with the original records — in `<schema>__restricted`. Two roles (names from the
deployment) read them:

- the *consumer* role reads the published relations and `dm_registry.versions`, nothing else;
- the *data-manager* role reads the restricted schema too.

`apply` runs in every upload's transaction: it creates missing roles (NOLOGIN; the deployment
grants them to login users), revokes what PUBLIC could read, grants SELECT on what exists now and
sets default privileges, so tables created later (new versions) get the same grants.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from etl_assets import registry

RESTRICTED_SUFFIX = "__restricted"


class GrantError(RuntimeError):
    """The uploader may not create the roles or apply the grants (names what to do)."""


@dataclass(frozen=True)
class Roles:
    consumer: str = "dm_consumer"
    data_manager: str = "dm_data_manager"


def restricted_schema(schema: str) -> str:
    return f"{schema}{RESTRICTED_SUFFIX}"


def _ensure_role(cur: psycopg.Cursor, role: str) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    if cur.fetchone() is None:
        try:
            cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        except psycopg.errors.InsufficientPrivilege:
            raise GrantError(
                f"role {role!r} does not exist and the uploader may not create it: create it"
                " (NOLOGIN) once, or let the uploader create roles"
            ) from None


def _grant_schema(cur: psycopg.Cursor, schema: str, readers: list[str], others: list[str]) -> None:
    s = sql.Identifier(schema)
    cur.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(s))
    cur.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM PUBLIC").format(s))
    for role in others:
        r = sql.Identifier(role)
        cur.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(s, r))
        cur.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(s, r))
        cur.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} REVOKE ALL ON TABLES FROM {}").format(
                s, r
            )
        )
    for role in readers:
        r = sql.Identifier(role)
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r))
        cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(s, r))
        cur.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                s, r
            )
        )


def apply(cur: psycopg.Cursor, schema: str, roles: Roles) -> None:
    """Grant the consumer the published schema and the registry's versions, the data manager
    also the restricted schema; nobody else anything (inside the caller's transaction)."""
    _ensure_role(cur, roles.consumer)
    _ensure_role(cur, roles.data_manager)
    both = [roles.consumer, roles.data_manager]
    _grant_schema(cur, schema, readers=both, others=[])
    _grant_schema(
        cur, restricted_schema(schema), readers=[roles.data_manager], others=[roles.consumer]
    )
    reg = sql.Identifier(registry.SCHEMA)
    for role in both:
        r = sql.Identifier(role)
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(reg, r))
        cur.execute(sql.SQL("GRANT SELECT ON {}.versions TO {}").format(reg, r))
