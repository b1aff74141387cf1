"""The audit log in PostgreSQL (`dm_audit`): append-only rows chained by keyed hashes.

- `events`: one row per event: a gapless `seq`, the event's canonical JSON (`body`, the text
  that is hashed), the previous row's hash and this row's keyed hash; `actor`, `action`,
  `module`, ... are generated from `body`, so they cannot disagree with it.
- `head`: one row holding the last `seq` and hash. Writers lock it (`FOR UPDATE`), so events are
  numbered in commit order without gaps, whatever number of processes write.
- UPDATE, DELETE and TRUNCATE on `events` are refused by triggers (for every role, owners
  included) and not granted to `dm_audit_writer`, the role the service should write as.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from etl_assets.audit.actions import Action, Outcome
from etl_assets.audit.chain import GENESIS, StoredRow, canonical, row_hash
from resources.postgres import PostgresResource

SCHEMA = "dm_audit"
WRITER_ROLE = "dm_audit_writer"
READER_ROLE = "dm_audit_reader"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.events (
    seq       bigint      PRIMARY KEY CHECK (seq > 0),
    at        timestamptz NOT NULL,
    body      text        NOT NULL,
    prev_hash bytea       NOT NULL,
    hash      bytea       NOT NULL,
    actor     text GENERATED ALWAYS AS (body::jsonb ->> 'actor') STORED,
    role      text GENERATED ALWAYS AS (body::jsonb ->> 'role') STORED,
    action    text GENERATED ALWAYS AS (body::jsonb ->> 'action') STORED,
    outcome   text GENERATED ALWAYS AS (body::jsonb ->> 'outcome') STORED,
    module    text GENERATED ALWAYS AS (body::jsonb #>> '{{target,module}}') STORED,
    version   text GENERATED ALWAYS AS (body::jsonb #>> '{{target,version}}') STORED,
    run_id    text GENERATED ALWAYS AS (body::jsonb #>> '{{target,run}}') STORED
);
CREATE INDEX IF NOT EXISTS events_actor ON {SCHEMA}.events (actor, seq);
CREATE INDEX IF NOT EXISTS events_action ON {SCHEMA}.events (action, seq);
CREATE INDEX IF NOT EXISTS events_module ON {SCHEMA}.events (module, seq);
CREATE TABLE IF NOT EXISTS {SCHEMA}.head (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint  NOT NULL,
    hash bytea   NOT NULL
);
INSERT INTO {SCHEMA}.head (one, seq, hash) VALUES (true, 0, '\\x{GENESIS.hex()}')
ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION {SCHEMA}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on %.% is refused', TG_OP,
        TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS events_append_only ON {SCHEMA}.events;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON {SCHEMA}.events
    FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_change();
DROP TRIGGER IF EXISTS events_no_truncate ON {SCHEMA}.events;
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON {SCHEMA}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_change();
DROP TRIGGER IF EXISTS head_no_truncate ON {SCHEMA}.head;
CREATE TRIGGER head_no_truncate BEFORE TRUNCATE OR DELETE ON {SCHEMA}.head
    FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_change();
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
        CREATE ROLE {WRITER_ROLE} NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER_ROLE}') THEN
        CREATE ROLE {READER_ROLE} NOLOGIN;
    END IF;
END $$;
REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM PUBLIC;
GRANT USAGE ON SCHEMA {SCHEMA} TO {WRITER_ROLE}, {READER_ROLE};
GRANT SELECT, INSERT ON {SCHEMA}.events TO {WRITER_ROLE};
GRANT SELECT, UPDATE ON {SCHEMA}.head TO {WRITER_ROLE};
GRANT SELECT ON {SCHEMA}.events, {SCHEMA}.head TO {READER_ROLE};
"""

_READY: set[str] = set()
_READY_LOCK = threading.Lock()


def ensure(conn: psycopg.Connection) -> None:
    """Create the schema, tables, triggers and roles if missing (serialized, idempotent)."""
    key = conn.info.dsn
    if key in _READY:
        return
    with _READY_LOCK, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('dm_audit_ddl'))")
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.head",)).fetchone()[
            0
        ]
        if not exists:
            conn.execute(DDL)
        _READY.add(key)


@dataclass(frozen=True)
class Target:
    """What an event is about; every part optional. Never a restricted value or a secret."""

    module: str | None = None
    version: str | None = None
    run: str | None = None
    name: str | None = None  # anything else: an asset key, a connection, a script

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


def _utc_text(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


@contextmanager
def _connection(conn: psycopg.Connection | PostgresResource) -> Iterator[psycopg.Connection]:
    if isinstance(conn, psycopg.Connection):
        yield conn
    else:
        with conn.connect() as c:
            yield c
            c.commit()


def record(
    conn: psycopg.Connection | PostgresResource,
    *,
    key: bytes,
    actor: str,
    role: str,
    action: Action | str,
    target: Target | Mapping[str, str] | None = None,
    outcome: Outcome | str = Outcome.OK,
    detail: Mapping[str, Any] | None = None,
) -> int:
    """Append one event and return its sequence number.

    On a connection inside the caller's transaction, the event commits (or rolls back) with it;
    on a `PostgresResource`, it gets its own connection and commits at once.
    """
    action, outcome = Action(action), Outcome(outcome)
    if isinstance(target, Target):
        target_dict = target.as_dict()
    else:
        target_dict = {k: str(v) for k, v in (target or {}).items() if v}
    with _connection(conn) as c:
        ensure(c)
        with c.transaction():
            seq, prev = c.execute(f"SELECT seq, hash FROM {SCHEMA}.head FOR UPDATE").fetchone()
            at = c.execute("SELECT clock_timestamp()").fetchone()[0]
            seq += 1
            body = canonical(
                {
                    "at": _utc_text(at),
                    "actor": actor,
                    "role": role,
                    "action": action.value,
                    "target": target_dict,
                    "outcome": outcome.value,
                    "detail": dict(detail or {}),
                }
            )
            digest = row_hash(key, seq, bytes(prev), body)
            c.execute(
                f"INSERT INTO {SCHEMA}.events (seq, at, body, prev_hash, hash)"
                " VALUES (%s, %s, %s, %s, %s)",
                (seq, at, body, bytes(prev), digest),
            )
            c.execute(f"UPDATE {SCHEMA}.head SET seq = %s, hash = %s", (seq, digest))
    return seq


def head(conn: psycopg.Connection) -> tuple[int, bytes]:
    """The last sequence number and its hash, as the head row says."""
    ensure(conn)
    seq, digest = conn.execute(f"SELECT seq, hash FROM {SCHEMA}.head").fetchone()
    return int(seq), bytes(digest)


def stored_rows(conn: psycopg.Connection, batch: int = 10_000) -> Iterator[StoredRow]:
    """Every row in `seq` order, streamed (for verification)."""
    ensure(conn)
    with conn.transaction(), conn.cursor(name="dm_audit_verify") as cur:
        cur.itersize = batch
        cur.execute(f"SELECT seq, at, body, prev_hash, hash FROM {SCHEMA}.events ORDER BY seq")
        for seq, at, body, prev, digest in cur:
            yield StoredRow(int(seq), _utc_text(at), body, bytes(prev), bytes(digest))


def query(
    conn: psycopg.Connection,
    *,
    module: str | None = None,
    user: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The newest events matching every filter given, newest first."""
    ensure(conn)
    clause, params = _filters(module=module, user=user, action=action, since=since)
    columns = "seq, at, actor, role, action, outcome, module, version, run_id, body"
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {columns} FROM {SCHEMA}.events{clause} ORDER BY seq DESC LIMIT %s",
            [*params, limit],
        ).fetchall()


def _filters(
    *,
    module: str | None = None,
    user: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    text: str | None = None,
) -> tuple[str, list[Any]]:
    """The WHERE clause (empty when no filter is given) and its parameters, for `query` and
    `search`; `text` matches anywhere in the event, case-insensitive, as a literal."""
    where, params = [], []
    for column, value in (("module", module), ("actor", user), ("action", action)):
        if value:
            where.append(f"{column} = %s")
            params.append(value)
    if since:
        where.append("at >= %s")
        params.append(since)
    if until:
        where.append("at < %s")
        params.append(until)
    if text:
        where.append("body ILIKE %s")
        params.append(
            "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
    return (" WHERE " + " AND ".join(where)) if where else "", params


def search(
    conn: psycopg.Connection,
    *,
    module: str | None = None,
    user: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    text: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the events matching every filter given (newest first) and how many match;
    `text` is searched in the whole event (case-insensitive)."""
    ensure(conn)
    clause, params = _filters(
        module=module, user=user, action=action, since=since, until=until, text=text
    )
    columns = "seq, at, actor, role, action, outcome, module, version, run_id"
    with conn.cursor(row_factory=dict_row) as cur:
        total = cur.execute(f"SELECT count(*) AS n FROM {SCHEMA}.events{clause}", params).fetchone()
        rows = cur.execute(
            f"SELECT {columns} FROM {SCHEMA}.events{clause} ORDER BY seq DESC LIMIT %s OFFSET %s",
            [*params, limit, offset],
        ).fetchall()
    return rows, int(total["n"])


def distinct_values(conn: psycopg.Connection, column: str) -> list[str]:
    """The values of `column` (actor, action or module) in the log, for filter choices."""
    if column not in ("actor", "action", "module"):
        raise ValueError(f"not a filter column: {column}")
    ensure(conn)
    rows = conn.execute(
        f"SELECT DISTINCT {column} FROM {SCHEMA}.events WHERE {column} IS NOT NULL ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def get(conn: psycopg.Connection, seq: int) -> dict[str, Any] | None:
    ensure(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT seq, at, body, prev_hash, hash FROM {SCHEMA}.events WHERE seq = %s", (seq,)
        ).fetchone()
