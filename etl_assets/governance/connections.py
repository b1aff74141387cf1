"""The connection registry and access to it: named connections with a contract and owners,
users' access requests, the owners' decisions, and the grants a run's gate looks for.

A registry entry is the governed record of a connection a module's metadata declares by the
same name (`connections[].name`): the metadata says how to reach it, the registry who owns it and
who may use it. It holds the *name* of the secret's environment variable, never a value. Every
change is audited in the caller's transaction (`etl_assets.audit`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import get_args

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from etl_assets import audit
from etl_assets.governance.store import SCHEMA, ensure
from etl_assets.metadata.base import ENV_NAME, NAME_PATTERN
from etl_assets.metadata.module import OWNER, Connection

# the metadata's connection types, and external systems a module reaches by other means
TYPES = (*get_args(Connection.model_fields["type"].annotation), "datamodule", "grpc", "api")
REASON_MAX = 2000


class GovernanceError(ValueError):
    """A governance request that cannot be done as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class Actor:
    """Who acts, for permissions and the audit log: a user name (an e-mail when signed in), the
    role label the audit log records, `admin` (may decide any connection's requests) and the
    owner identities the user speaks for (their e-mail, `team:<group>` of their groups)."""

    name: str
    role: str
    admin: bool = False
    ids: frozenset[str] = frozenset()

    def is_owner(self, owners: tuple[str, ...] | list[str]) -> bool:
        return bool({self.name, *self.ids} & set(owners))


class ConnectionSpec(BaseModel):
    """What a task editor enters for a connection (the form and `save_connection`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(pattern=NAME_PATTERN, description="as the modules' metadata names it")
    type: str
    description: str = Field(default="", max_length=4000, description="the contract, in words")
    contract_url: str | None = Field(
        default=None, description="the external module's Croissant or metadata URL, if any"
    )
    secret_env: str | None = Field(
        default=None, pattern=ENV_NAME, description="the variable holding the secret (its name)"
    )
    owners: list[str] = Field(min_length=1)

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v not in TYPES:
            raise ValueError(f"expected one of {', '.join(TYPES)}, got {v!r}")
        return v

    @field_validator("contract_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if not v:
            return None
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"expected an http:// or https:// URL, got {v[:80]!r}")
        return v

    @field_validator("owners")
    @classmethod
    def _owners(cls, v: list[str]) -> list[str]:
        owners = list(dict.fromkeys(o.strip() for o in v if o.strip()))
        bad = [o for o in owners if not OWNER.match(o)]
        if bad:
            raise ValueError(f"owners must be e-mail addresses or team:<name>, got {bad!r}")
        if not owners:
            raise ValueError("a connection needs at least one owner")
        return owners

    @classmethod
    def parse(cls, data: dict) -> ConnectionSpec:
        """The spec, or a `GovernanceError` naming each field and what was expected."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = []
            for e in exc.errors():
                where = ".".join(str(p) for p in e["loc"]) or "connection"
                problems.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
            raise GovernanceError("; ".join(problems)) from None


@dataclass(frozen=True)
class RegisteredConnection:
    name: str
    type: str
    description: str
    contract_url: str | None
    secret_env: str | None
    owners: tuple[str, ...]
    updated_by: str
    updated_at: dt.datetime


@dataclass(frozen=True)
class AccessRequest:
    id: int
    connection: str
    grantee: str
    requested_by: str
    reason: str
    requested_at: dt.datetime
    status: str
    decided_by: str | None
    decided_at: dt.datetime | None
    note: str | None


def _connection(row: dict) -> RegisteredConnection:
    return RegisteredConnection(
        name=row["name"], type=row["type"], description=row["description"],
        contract_url=row["contract_url"], secret_env=row["secret_env"],
        owners=tuple(row["owners"]), updated_by=row["updated_by"], updated_at=row["updated_at"],
    )  # fmt: skip


def _target(connection: str) -> audit.Target:
    return audit.Target(name=f"connection:{connection}")


def save_connection(
    conn: psycopg.Connection, spec: ConnectionSpec, actor: Actor, *, create: bool
) -> RegisteredConnection:
    """Create (`create`) or update a connection; refuses a duplicate or an unknown name."""
    ensure(conn)
    fields = (spec.type, spec.description, spec.contract_url, spec.secret_env, spec.owners)
    with conn.transaction():
        exists = get_connection(conn, spec.name) is not None
        if create and exists:
            raise GovernanceError(f"a connection named {spec.name!r} exists already: edit it")
        if not create and not exists:
            raise GovernanceError(f"no connection named {spec.name!r} in the registry")
        if create:
            conn.execute(
                f"""INSERT INTO {SCHEMA}.connections (type, description, contract_url,
                    secret_env, owners, name, created_by, updated_by)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
                (*fields, spec.name, actor.name, actor.name),
            )
        else:
            conn.execute(
                f"""UPDATE {SCHEMA}.connections SET type = %s, description = %s,
                    contract_url = %s, secret_env = %s, owners = %s, updated_by = %s,
                    updated_at = now() WHERE name = %s""",
                (*fields, actor.name, spec.name),
            )
        audit.record(
            conn, actor=actor.name, role=actor.role,
            action=audit.Action.CONNECTION_CREATE if create else audit.Action.CONNECTION_EDIT,
            target=_target(spec.name),
            detail={"type": spec.type, "owners": spec.owners, "secret_env": spec.secret_env,
                    "contract_url": spec.contract_url},
        )  # fmt: skip
    saved = get_connection(conn, spec.name)
    assert saved is not None
    return saved


def get_connection(conn: psycopg.Connection, name: str) -> RegisteredConnection | None:
    ensure(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT * FROM {SCHEMA}.connections WHERE name = %s", (name,)).fetchone()
    return _connection(row) if row else None


def list_connections(conn: psycopg.Connection) -> list[RegisteredConnection]:
    ensure(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT * FROM {SCHEMA}.connections ORDER BY name").fetchall()
    return [_connection(r) for r in rows]


# --- access ------------------------------------------------------------------------------------


def has_access(conn: psycopg.Connection, connection: RegisteredConnection, who: str) -> bool:
    """An owner of the connection, or a grantee of an approved request for it."""
    if who in connection.owners:
        return True
    row = conn.execute(
        f"""SELECT 1 FROM {SCHEMA}.access_requests
            WHERE connection = %s AND grantee = %s AND status = 'approved' LIMIT 1""",
        (connection.name, who),
    ).fetchone()
    return row is not None


def request_access(
    conn: psycopg.Connection, connection: str, actor: Actor, reason: str, grantee: str | None = None
) -> AccessRequest:
    """Ask the connection's owners for access for `grantee` (default: the requester)."""
    ensure(conn)
    reason = (reason or "").strip()
    grantee = (grantee or "").strip() or actor.name
    if not reason:
        raise GovernanceError("reason: say why you need access (the owners read it)")
    if len(reason) > REASON_MAX:
        raise GovernanceError(f"reason: at most {REASON_MAX} characters, got {len(reason)}")
    if not OWNER.match(grantee):
        raise GovernanceError(f"grantee: an e-mail address or team:<name>, got {grantee[:80]!r}")
    with conn.transaction():
        registered = get_connection(conn, connection)
        if registered is None:
            raise GovernanceError(f"no connection named {connection!r} in the registry")
        if has_access(conn, registered, grantee):
            raise GovernanceError(f"{grantee} has access to {connection!r} already")
        if _pending(conn, connection, grantee):
            raise GovernanceError(f"a request of {grantee} for {connection!r} is pending already")
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                f"""INSERT INTO {SCHEMA}.access_requests (connection, grantee, requested_by,
                    reason) VALUES (%s, %s, %s, %s) RETURNING *""",
                (connection, grantee, actor.name, reason),
            ).fetchone()
        audit.record(
            conn, actor=actor.name, role=actor.role, action=audit.Action.ACCESS_REQUEST,
            target=_target(connection),
            detail={"request": row["id"], "grantee": grantee, "reason": reason},
        )  # fmt: skip
    return AccessRequest(**row)


def _pending(conn: psycopg.Connection, connection: str, grantee: str) -> bool:
    return (
        conn.execute(
            f"""SELECT 1 FROM {SCHEMA}.access_requests
                WHERE connection = %s AND grantee = %s AND status = 'pending'""",
            (connection, grantee),
        ).fetchone()
        is not None
    )


def may_decide(connection: RegisteredConnection, actor: Actor) -> bool:
    """Owners decide requests for their connection; admins for every connection."""
    return actor.admin or actor.is_owner(connection.owners)


def _request_for_owner(
    conn: psycopg.Connection, request_id: int, actor: Actor, what: str
) -> AccessRequest:
    """The request, locked, when `actor` may decide it (an owner of its connection or an admin);
    else an error saying who may `what`."""
    found = get_request(conn, request_id, for_update=True)
    if found is None:
        raise GovernanceError(f"no access request {request_id}")
    registered = get_connection(conn, found.connection)
    assert registered is not None  # a foreign key
    if not may_decide(registered, actor):
        raise GovernanceError(
            f"only the owners of {found.connection!r} ({', '.join(registered.owners)}) {what}"
        )
    return found


def decide(
    conn: psycopg.Connection, request_id: int, actor: Actor, approve: bool, note: str = ""
) -> AccessRequest:
    """An owner's approval (a grant) or denial of a pending request."""
    ensure(conn)
    with conn.transaction():
        found = _request_for_owner(conn, request_id, actor, "decide its access requests")
        if found.status != "pending":
            raise GovernanceError(
                f"access request {request_id} was {found.status} by {found.decided_by} already"
            )
        status = "approved" if approve else "denied"
        conn.execute(
            f"""UPDATE {SCHEMA}.access_requests SET status = %s, decided_by = %s,
                decided_at = now(), note = %s WHERE id = %s""",
            (status, actor.name, (note or "").strip()[:REASON_MAX] or None, request_id),
        )
        audit.record(
            conn, actor=actor.name, role=actor.role, action=audit.Action.ACCESS_DECISION,
            target=_target(found.connection),
            detail={"request": request_id, "grantee": found.grantee, "decision": status},
        )  # fmt: skip
    decided = get_request(conn, request_id)
    assert decided is not None
    return decided


def revoke(
    conn: psycopg.Connection, request_id: int, actor: Actor, note: str = ""
) -> AccessRequest:
    """An owner withdraws a grant (an approved request); the next governed run needs a new one."""
    ensure(conn)
    with conn.transaction():
        found = _request_for_owner(conn, request_id, actor, "revoke its grants")
        if found.status != "approved":
            raise GovernanceError(f"access request {request_id} is {found.status}, not a grant")
        conn.execute(
            f"""UPDATE {SCHEMA}.access_requests SET status = 'revoked', decided_by = %s,
                decided_at = now(), note = %s WHERE id = %s""",
            (actor.name, (note or "").strip()[:REASON_MAX] or None, request_id),
        )
        audit.record(
            conn, actor=actor.name, role=actor.role, action=audit.Action.ACCESS_DECISION,
            target=_target(found.connection),
            detail={"request": request_id, "grantee": found.grantee, "decision": "revoked"},
        )  # fmt: skip
    revoked = get_request(conn, request_id)
    assert revoked is not None
    return revoked


def get_request(
    conn: psycopg.Connection, request_id: int, for_update: bool = False
) -> AccessRequest | None:
    ensure(conn)
    lock = " FOR UPDATE" if for_update else ""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT * FROM {SCHEMA}.access_requests WHERE id = %s{lock}", (request_id,)
        ).fetchone()
    return AccessRequest(**row) if row else None


def list_requests(
    conn: psycopg.Connection,
    *,
    connection: str | None = None,
    status: str | None = None,
    owner: str | None = None,
    requester: str | None = None,
) -> list[AccessRequest]:
    """Requests matching every filter given (`owner`: of the request's connection), newest first."""
    ensure(conn)
    where, params = [], []
    for clause, value in (
        ("r.connection = %s", connection),
        ("r.status = %s", status),
        ("%s = ANY(c.owners)", owner),
        ("r.requested_by = %s", requester),
    ):
        if value:
            where.append(clause)
            params.append(value)
    sql = (
        f"SELECT r.* FROM {SCHEMA}.access_requests r JOIN {SCHEMA}.connections c"
        " ON c.name = r.connection"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql + " ORDER BY r.id DESC LIMIT 500", params).fetchall()
    return [AccessRequest(**r) for r in rows]
