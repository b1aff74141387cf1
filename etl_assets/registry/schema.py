"""The registry's tables (`dm_registry`), created and upgraded in place by `ensure`."""

from __future__ import annotations

import re

import psycopg

SCHEMA = "dm_registry"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.versions (
    module        text        NOT NULL,
    version       text        NOT NULL,
    published_at  timestamptz NOT NULL DEFAULT now(),
    metadata_hash text        NOT NULL,
    sink          text        NOT NULL,
    location      text        NOT NULL,
    tables        jsonb       NOT NULL,
    row_counts    jsonb       NOT NULL,
    run_id        text,
    PRIMARY KEY (module, version)
);
ALTER TABLE {SCHEMA}.versions ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'published';
ALTER TABLE {SCHEMA}.versions ADD COLUMN IF NOT EXISTS current boolean NOT NULL DEFAULT false;
ALTER TABLE {SCHEMA}.versions ADD COLUMN IF NOT EXISTS state_changed_at timestamptz;
CREATE UNIQUE INDEX IF NOT EXISTS versions_one_current ON {SCHEMA}.versions (module)
    WHERE current;
UPDATE {SCHEMA}.versions v SET current = true
WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.versions c WHERE c.module = v.module AND c.current)
  AND v.version = (SELECT w.version FROM {SCHEMA}.versions w
                   WHERE w.module = v.module AND w.state = 'published'
                     AND w.version ~ '^[0-9]+[.][0-9]+[.][0-9]+$'
                   ORDER BY string_to_array(w.version, '.')::int[] DESC LIMIT 1);
CREATE TABLE IF NOT EXISTS {SCHEMA}.metadata_documents (
    module        text        NOT NULL,
    metadata_hash text        NOT NULL,
    document      jsonb       NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module, metadata_hash)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.approvals (
    module      text        NOT NULL,
    version     text        NOT NULL,
    approved_by text        NOT NULL,
    approved_at timestamptz NOT NULL DEFAULT now(),
    comment     text,
    PRIMARY KEY (module, version)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.allocations (
    module       text        NOT NULL,
    version      text        NOT NULL,
    allocated_at timestamptz NOT NULL DEFAULT now(),
    trigger      text        NOT NULL,
    run_id       text,
    PRIMARY KEY (module, version)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.skips (
    id           bigserial   PRIMARY KEY,
    module       text        NOT NULL,
    requested_by text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    consumed_at  timestamptz,
    tick_time    timestamptz
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.pauses (
    module      text        PRIMARY KEY,
    paused_by   text        NOT NULL,
    paused_at   timestamptz NOT NULL DEFAULT now(),
    instigators jsonb       NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.alerts (
    run_id  text        NOT NULL,
    kind    text        NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, kind)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.discards (
    module       text        NOT NULL,
    version      text        NOT NULL,
    discarded_by text        NOT NULL,
    discarded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module, version)
);
"""


PUBLISHED, EXPIRED = "published", "expired"
# what the DDL creates, read from it, so that a table or column added there is noticed
TABLES = re.findall(rf"CREATE TABLE IF NOT EXISTS {SCHEMA}\.(\w+)", DDL)
COLUMNS = re.findall(rf"ALTER TABLE {SCHEMA}\.(\w+) ADD COLUMN IF NOT EXISTS (\w+)", DDL)


def _complete(conn: psycopg.Connection) -> bool:
    """Every table and column of the DDL is there. Checked first because ALTER TABLE takes a
    lock that consumers reading `versions` would wait on, even when it changes nothing."""
    rows = conn.execute(
        """SELECT c.relname, a.attname FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           WHERE n.nspname = %s AND c.relkind = 'r'""",
        (SCHEMA,),
    ).fetchall()
    present = set(rows)
    tables = {t for t, _ in present}
    return all(t in tables for t in TABLES) and all(c in present for c in COLUMNS)


def ensure(conn: psycopg.Connection) -> None:
    """Create the registry's schema and tables if they are missing (serialized, idempotent)."""
    if _complete(conn):
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('dm_registry_ddl'))")
        conn.execute(DDL)
