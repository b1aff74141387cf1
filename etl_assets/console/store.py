"""The console's own tables in PostgreSQL. Every SQL statement the console runs is here.

- `dm_console.decisions`: what task managers decided about a version outside Dagster and the
  registry: `rejected` (with the reason), `stopped` and `discarded` (a stopped version whose
  outbox was deleted). Texts here are what a user typed as a reason: no data values.
- `dm_console.checks`: the blocking checks re-run on a corrected version, in words.
- `dm_console_restricted.change_sets`: the corrections of a version's outbox (the records a data
  manager added, edited or deleted, with their values) — restricted zone, like the quarantine:
  readable by the data-manager role only (`dm_data_manager`, granted below when it exists).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

SCHEMA = "dm_console"
RESTRICTED = "dm_console_restricted"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE SCHEMA IF NOT EXISTS {RESTRICTED};
REVOKE ALL ON SCHEMA {RESTRICTED} FROM PUBLIC;
CREATE TABLE IF NOT EXISTS {SCHEMA}.decisions (
    id        bigserial   PRIMARY KEY,
    module    text        NOT NULL,
    version   text        NOT NULL,
    decision  text        NOT NULL CHECK (decision IN ('rejected', 'stopped', 'discarded')),
    by_user   text        NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    reason    text        NOT NULL DEFAULT '',
    run_id    text
);
CREATE INDEX IF NOT EXISTS decisions_version ON {SCHEMA}.decisions (module, version, id);
CREATE TABLE IF NOT EXISTS {RESTRICTED}.change_sets (
    id         bigserial   PRIMARY KEY,
    module     text        NOT NULL,
    version    text        NOT NULL,
    by_user    text        NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    reason     text        NOT NULL,
    changes    jsonb       NOT NULL,
    summary    jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS change_sets_version ON {RESTRICTED}.change_sets (module, version, id);
CREATE TABLE IF NOT EXISTS {SCHEMA}.checks (
    module     text        NOT NULL,
    version    text        NOT NULL,
    change_set bigint      NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    passed     boolean     NOT NULL,
    results    jsonb       NOT NULL,
    PRIMARY KEY (module, version, change_set)
);
DO $$ BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'dm_data_manager') THEN
        GRANT USAGE ON SCHEMA {RESTRICTED} TO dm_data_manager;
        GRANT SELECT ON ALL TABLES IN SCHEMA {RESTRICTED} TO dm_data_manager;
    END IF;
END $$;
"""

_READY: set[str] = set()


def ensure(conn: psycopg.Connection) -> None:
    key = conn.info.dsn
    if key in _READY:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('dm_console_ddl'))")
        conn.execute(DDL)
    _READY.add(key)


@dataclass(frozen=True)
class Decision:
    decision: str
    by_user: str
    at: Any
    reason: str
    run_id: str | None


def record_decision(
    conn: psycopg.Connection, module: str, version: str, decision: str, by: str,
    reason: str = "", run_id: str | None = None,
) -> None:  # fmt: skip
    ensure(conn)
    conn.execute(
        f"INSERT INTO {SCHEMA}.decisions (module, version, decision, by_user, reason, run_id)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (module, version, decision, by, reason, run_id),
    )


def decisions(conn: psycopg.Connection, module: str) -> dict[str, list[Decision]]:
    """Every decision about `module`'s versions, oldest first, by version."""
    ensure(conn)
    rows = conn.execute(
        f"SELECT version, decision, by_user, at, reason, run_id FROM {SCHEMA}.decisions"
        " WHERE module = %s ORDER BY id",
        (module,),
    ).fetchall()
    out: dict[str, list[Decision]] = {}
    for version, *rest in rows:
        out.setdefault(version, []).append(Decision(*rest))
    return out


def add_change_set(
    conn: psycopg.Connection, module: str, version: str, by: str, reason: str,
    changes: list[dict], summary: dict,
) -> int:  # fmt: skip
    ensure(conn)
    row = conn.execute(
        f"INSERT INTO {RESTRICTED}.change_sets (module, version, by_user, reason, changes, summary)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (module, version, by, reason, json.dumps(changes), json.dumps(summary)),
    ).fetchone()
    return int(row[0])


def change_sets(conn: psycopg.Connection, module: str, version: str) -> list[dict[str, Any]]:
    """The change sets of a version, oldest first (with their values: restricted)."""
    ensure(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT id, by_user, at, reason, changes, summary FROM {RESTRICTED}.change_sets"
            " WHERE module = %s AND version = %s ORDER BY id",
            (module, version),
        ).fetchall()


def record_checks(
    conn: psycopg.Connection, module: str, version: str, change_set: int, passed: bool,
    results: list[dict],
) -> None:  # fmt: skip
    ensure(conn)
    conn.execute(
        f"INSERT INTO {SCHEMA}.checks (module, version, change_set, passed, results)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (module, version, change_set) DO UPDATE"
        " SET passed = EXCLUDED.passed, results = EXCLUDED.results, at = now()",
        (module, version, change_set, passed, json.dumps(results)),
    )


def latest_checks(conn: psycopg.Connection, module: str, version: str) -> dict[str, Any] | None:
    """The checks of the version's last change set, or None when it was never corrected."""
    ensure(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT change_set, at, passed, results FROM {SCHEMA}.checks"
            " WHERE module = %s AND version = %s ORDER BY change_set DESC LIMIT 1",
            (module, version),
        ).fetchone()
