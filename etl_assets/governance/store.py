"""The governance tables in PostgreSQL (schema `dm_governance`, beside `dm_registry`).

- `connections`: the governed record of a named connection; `secret_env` holds the *name* of
  the environment variable with its secret, never a value.
- `access_requests`: who asked for which connection, why, and the owners' decision; an approved
  request is a grant for its grantee.
- `script_releases`: one row per release of a module's script (the pinned sha256, who, when);
  the newest row of a (module, path) is its released state.
- `drafts`: uploaded metadata files of a module, waiting for a task editor's release.
"""

from __future__ import annotations

import threading

import psycopg

SCHEMA = "dm_governance"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.connections (
    name         text        PRIMARY KEY,
    type         text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    contract_url text,
    secret_env   text,
    owners       text[]      NOT NULL,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.access_requests (
    id           bigserial   PRIMARY KEY,
    connection   text        NOT NULL REFERENCES {SCHEMA}.connections (name) ON UPDATE CASCADE,
    grantee      text        NOT NULL,
    requested_by text        NOT NULL,
    reason       text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    status       text        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'approved', 'denied', 'revoked')),
    decided_by   text,
    decided_at   timestamptz,
    note         text
);
CREATE INDEX IF NOT EXISTS access_requests_grantee
    ON {SCHEMA}.access_requests (connection, grantee, status);
CREATE TABLE IF NOT EXISTS {SCHEMA}.script_releases (
    module      text        NOT NULL,
    path        text        NOT NULL,
    sha256      text        NOT NULL,
    released_by text        NOT NULL,
    released_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module, path, released_at)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.drafts (
    id          bigserial   PRIMARY KEY,
    module      text        NOT NULL,
    filename    text        NOT NULL,
    text        text        NOT NULL,
    sha256      text        NOT NULL,
    uploaded_by text        NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    status      text        NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'released', 'discarded')),
    decided_by  text,
    decided_at  timestamptz
);
"""

_READY: set[str] = set()
_LOCK = threading.Lock()


def ensure(conn: psycopg.Connection) -> None:
    """Create the schema and tables if missing (serialized between processes, idempotent)."""
    key = conn.info.dsn
    if key in _READY:
        return
    with _LOCK, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('dm_governance_ddl'))")
        conn.execute(DDL)
        _READY.add(key)
