"""The registry in PostgreSQL (`dm_registry`): published versions, approvals, and the version
numbers handed out to runs. Every SQL statement about them lives here.

- `versions`: one row per published version (any sink), with where each table went (the
  version's own relations or objects, never the live view), its `state` (`published`, or
  `expired` once retention removed its data) and `current` (the one version consumers read as
  `<schema>.<table>`: the highest published one). Consumers may read this table.
- `metadata_documents`: the module's metadata document behind each canonical hash, so that the
  configuration that produced a version can be shown and compared (`etl_assets/history.py`).
- `approvals`: a task manager's approval of a prepared version's upload.
- `allocations`: every version number handed out by the allocator, so that two triggers (a
  schedule tick and a sensor, or ten `dmetl run`s) never pick the same one, and which run holds it.
- `skips`: a request to skip a module's next scheduled tick, and the tick that consumed it.
- `pauses`: which schedules and sensors `dmetl pause` stopped, so `dmetl resume` restarts those.
- `alerts`: the runs an alert was sent for, so a sensor restarted mid-tick never sends twice.
- `discards`: prepared versions thrown away (`dmetl stop --discard`); never uploaded afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import psycopg
from psycopg.rows import dict_row

from etl_assets import semver

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


# --- published versions --------------------------------------------------------------------


def record_version(
    cur: psycopg.Cursor,
    *,
    module: str,
    version: str,
    metadata_hash: str,
    sink: str,
    location: str,
    tables: dict[str, str],
    rows: dict[str, int],
    run_id: str | None,
    document: dict[str, Any] | None = None,
) -> str | None:
    """Record a published version (any sink), inside the caller's transaction, with the
    metadata document behind its hash; returns the version that is current afterwards."""
    cur.execute(
        f"""INSERT INTO {SCHEMA}.versions
            (module, version, metadata_hash, sink, location, tables, row_counts, run_id,
             state, state_changed_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
            ON CONFLICT (module, version) DO UPDATE SET
              published_at = now(), metadata_hash = EXCLUDED.metadata_hash,
              sink = EXCLUDED.sink, location = EXCLUDED.location, tables = EXCLUDED.tables,
              row_counts = EXCLUDED.row_counts, run_id = EXCLUDED.run_id,
              state = EXCLUDED.state, state_changed_at = now()""",
        (
            module,
            version,
            metadata_hash,
            sink,
            location,
            json.dumps(tables),
            json.dumps(rows),
            run_id,
            PUBLISHED,
        ),
    )
    if document is not None:
        record_document(cur, module, metadata_hash, document)
    return mark_current(cur, module)


def record_document(
    cur: psycopg.Cursor, module: str, metadata_hash: str, document: dict[str, Any]
) -> None:
    """Keep the metadata document behind `metadata_hash` (the first one seen: equal hashes
    mean equal meaning)."""
    cur.execute(
        f"""INSERT INTO {SCHEMA}.metadata_documents (module, metadata_hash, document)
            VALUES (%s, %s, %s) ON CONFLICT DO NOTHING""",
        (module, metadata_hash, json.dumps(document, default=str)),
    )


def metadata_document(
    conn: psycopg.Connection, module: str, metadata_hash: str
) -> dict[str, Any] | None:
    ensure(conn)
    row = conn.execute(
        f"SELECT document FROM {SCHEMA}.metadata_documents"
        " WHERE module = %s AND metadata_hash = %s",
        (module, metadata_hash),
    ).fetchone()
    return row[0] if row else None


def published_versions(cur: psycopg.Cursor, module: str) -> list[str]:
    """Versions whose data is published (not expired)."""
    cur.execute(
        f"SELECT version FROM {SCHEMA}.versions WHERE module = %s AND state = %s",
        (module, PUBLISHED),
    )
    return [r[0] for r in cur.fetchall()]


def highest(versions: list[str]) -> str | None:
    """The version consumers are served among `versions`: the highest semantic version."""
    return semver.latest(versions)


def mark_current(cur: psycopg.Cursor, module: str) -> str | None:
    """Mark the highest published version current (and no other), inside the caller's
    transaction; returns it."""
    top = highest(published_versions(cur, module))
    cur.execute(
        f"UPDATE {SCHEMA}.versions SET current = false"
        " WHERE module = %s AND current AND version IS DISTINCT FROM %s",
        (module, top),
    )
    if top is not None:
        cur.execute(
            f"UPDATE {SCHEMA}.versions SET current = true"
            " WHERE module = %s AND version = %s AND NOT current",
            (module, top),
        )
    return top


def current_version(conn: psycopg.Connection, module: str) -> str | None:
    """The version consumers read as `<schema>.<table>` now."""
    ensure(conn)
    row = conn.execute(
        f"SELECT version FROM {SCHEMA}.versions WHERE module = %s AND current", (module,)
    ).fetchone()
    return row[0] if row else None


def current_row_counts(conn: psycopg.Connection, module: str) -> tuple[str, dict[str, int]] | None:
    """The version consumers read now (the highest published one) and its rows per table."""
    ensure(conn)
    row = conn.execute(
        f"SELECT version, row_counts FROM {SCHEMA}.versions WHERE module = %s AND current",
        (module,),
    ).fetchone()
    if row is None:
        return None
    return row[0], {str(k): int(v) for k, v in row[1].items()}


def _semver_key(version: str) -> tuple[int, tuple[int, int, int]]:
    return (1, semver.parse(version)) if semver.is_version(version) else (0, (0, 0, 0))


def list_versions(conn: psycopg.Connection, module: str) -> list[dict[str, Any]]:
    """Versions of `module` in the registry (published and expired), highest version first."""
    ensure(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""SELECT version, published_at, metadata_hash, sink, location, tables, row_counts,
                       run_id, state, current, state_changed_at
                FROM {SCHEMA}.versions WHERE module = %s""",
            (module,),
        )
        rows = list(cur.fetchall())
    return sorted(rows, key=lambda r: _semver_key(r["version"]), reverse=True)


def expire_version(cur: psycopg.Cursor, module: str, version: str) -> None:
    """Mark a version whose data retention removed `expired` (never the current one)."""
    cur.execute(
        f"""UPDATE {SCHEMA}.versions SET state = %s, state_changed_at = now()
            WHERE module = %s AND version = %s AND NOT current""",
        (EXPIRED, module, version),
    )
    if cur.rowcount != 1:
        raise ValueError(f"{module} {version} is current or not in the registry: not expired")


# --- approvals -----------------------------------------------------------------------------


def approve(
    conn: psycopg.Connection, module: str, version: str, by: str, comment: str = ""
) -> None:
    """Record that `by` approved the upload of `module` `version` (again: a new approval time)."""
    ensure(conn)
    conn.execute(
        f"""INSERT INTO {SCHEMA}.approvals (module, version, approved_by, comment)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (module, version) DO UPDATE SET approved_by = EXCLUDED.approved_by,
              approved_at = now(), comment = EXCLUDED.comment""",
        (module, version, by, comment),
    )


def approval(conn: psycopg.Connection, module: str, version: str) -> dict[str, Any] | None:
    ensure(conn)
    row = conn.execute(
        f"SELECT approved_by, approved_at FROM {SCHEMA}.approvals"
        " WHERE module = %s AND version = %s",
        (module, version),
    ).fetchone()
    return {"approved_by": row[0], "approved_at": row[1]} if row else None


def pending_approvals(
    conn: psycopg.Connection, modules: list[str]
) -> list[tuple[str, str, dt.datetime]]:
    """(module, version, approved_at) approved but not yet published, oldest approval first."""
    ensure(conn)
    rows = conn.execute(
        f"""SELECT a.module, a.version, a.approved_at FROM {SCHEMA}.approvals a
            LEFT JOIN {SCHEMA}.versions v USING (module, version)
            LEFT JOIN {SCHEMA}.discards d USING (module, version)
            WHERE v.version IS NULL AND d.version IS NULL AND a.module = ANY(%s)
            ORDER BY a.approved_at""",
        (modules,),
    ).fetchall()
    return [(m, v, at) for m, v, at in rows]


def kept_versions(conn: psycopg.Connection, module: str) -> set[str]:
    """Versions outbox retention must not touch: published ones, and approved ones
    (expired versions are published-version retention's to remove)."""
    ensure(conn)
    rows = conn.execute(
        f"""SELECT version FROM {SCHEMA}.versions WHERE module = %s
            UNION SELECT version FROM {SCHEMA}.approvals WHERE module = %s""",
        (module, module),
    ).fetchall()
    return {r[0] for r in rows}


# --- version allocation --------------------------------------------------------------------


def lock_module(cur: psycopg.Cursor, module: str) -> None:
    """Serialize allocations of one module until the caller's transaction ends."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"dm_allocate:{module}",))


def allocated_versions(cur: psycopg.Cursor, module: str) -> list[str]:
    cur.execute(f"SELECT version FROM {SCHEMA}.allocations WHERE module = %s", (module,))
    return [r[0] for r in cur.fetchall()]


def allocation(cur: psycopg.Cursor, module: str, version: str) -> dict[str, Any] | None:
    cur.execute(
        f"SELECT trigger, run_id, allocated_at FROM {SCHEMA}.allocations"
        " WHERE module = %s AND version = %s",
        (module, version),
    )
    row = cur.fetchone()
    return {"trigger": row[0], "run_id": row[1], "allocated_at": row[2]} if row else None


def record_allocation(
    cur: psycopg.Cursor, module: str, version: str, trigger: str, run_id: str | None
) -> None:
    """Hand `version` to a run (or re-hand it: re-running a version takes it over)."""
    cur.execute(
        f"""INSERT INTO {SCHEMA}.allocations (module, version, trigger, run_id)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (module, version) DO UPDATE SET trigger = EXCLUDED.trigger,
              run_id = EXCLUDED.run_id, allocated_at = now()""",
        (module, version, trigger, run_id),
    )


# --- reads for the console -----------------------------------------------------------------


def module_allocations(conn: psycopg.Connection, module: str) -> dict[str, dict[str, Any]]:
    """Every version handed out for `module`: trigger, run id and when."""
    ensure(conn)
    rows = conn.execute(
        f"SELECT version, trigger, run_id, allocated_at FROM {SCHEMA}.allocations"
        " WHERE module = %s",
        (module,),
    ).fetchall()
    return {v: {"trigger": t, "run_id": r, "allocated_at": at} for v, t, r, at in rows}


def module_approvals(conn: psycopg.Connection, module: str) -> dict[str, dict[str, Any]]:
    """Every approval of `module`'s versions: who, when and their comment."""
    ensure(conn)
    rows = conn.execute(
        f"SELECT version, approved_by, approved_at, comment FROM {SCHEMA}.approvals"
        " WHERE module = %s",
        (module,),
    ).fetchall()
    return {v: {"approved_by": b, "approved_at": at, "comment": c} for v, b, at, c in rows}


def withdraw_approval(conn: psycopg.Connection, module: str, version: str) -> None:
    """Forget an approval (the version was rejected or discarded after it)."""
    ensure(conn)
    conn.execute(
        f"DELETE FROM {SCHEMA}.approvals WHERE module = %s AND version = %s", (module, version)
    )


# --- run control: skipped ticks, paused modules, discarded versions --------------------------


def request_skip(conn: psycopg.Connection, module: str, by: str) -> dt.datetime:
    """Ask that the module's next scheduled tick be skipped (one request skips one tick)."""
    ensure(conn)
    row = conn.execute(
        f"INSERT INTO {SCHEMA}.skips (module, requested_by) VALUES (%s, %s) RETURNING requested_at",
        (module, by),
    ).fetchone()
    return row[0]


def pending_skips(conn: psycopg.Connection, module: str) -> int:
    ensure(conn)
    row = conn.execute(
        f"SELECT count(*) FROM {SCHEMA}.skips WHERE module = %s AND consumed_at IS NULL",
        (module,),
    ).fetchone()
    return int(row[0])


def consume_skip(
    conn: psycopg.Connection, module: str, tick_time: dt.datetime | None
) -> dict[str, Any] | None:
    """Take the oldest pending skip request of `module` for this tick, if there is one.

    A tick evaluated again (the daemon retries a tick it did not finish) finds the request it
    consumed before, so one request never skips two ticks and a retried tick stays skipped."""
    ensure(conn)
    with conn.transaction():
        if tick_time is not None:
            row = conn.execute(
                f"""SELECT requested_by, requested_at FROM {SCHEMA}.skips
                    WHERE module = %s AND tick_time = %s""",
                (module, tick_time),
            ).fetchone()
            if row:
                return {"requested_by": row[0], "requested_at": row[1]}
        row = conn.execute(
            f"""UPDATE {SCHEMA}.skips SET consumed_at = now(), tick_time = %s
                WHERE id = (SELECT id FROM {SCHEMA}.skips
                            WHERE module = %s AND consumed_at IS NULL
                            ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                RETURNING requested_by, requested_at""",
            (tick_time, module),
        ).fetchone()
    return {"requested_by": row[0], "requested_at": row[1]} if row else None


def record_pause(conn: psycopg.Connection, module: str, by: str, instigators: list[str]) -> None:
    """Remember what a pause stopped (a second pause adds to it)."""
    ensure(conn)
    conn.execute(
        f"""INSERT INTO {SCHEMA}.pauses (module, paused_by, instigators) VALUES (%s, %s, %s)
            ON CONFLICT (module) DO UPDATE SET paused_by = EXCLUDED.paused_by,
              paused_at = now(),
              instigators = (SELECT jsonb_agg(DISTINCT x) FROM jsonb_array_elements_text(
                  {SCHEMA}.pauses.instigators || EXCLUDED.instigators) AS x)""",
        (module, by, json.dumps(instigators)),
    )


def take_pause(conn: psycopg.Connection, module: str) -> list[str] | None:
    """What the module's pause stopped (None: it is not paused), forgetting the pause."""
    ensure(conn)
    row = conn.execute(
        f"DELETE FROM {SCHEMA}.pauses WHERE module = %s RETURNING instigators", (module,)
    ).fetchone()
    return list(row[0]) if row else None


def pause_of(conn: psycopg.Connection, module: str) -> dict[str, Any] | None:
    ensure(conn)
    row = conn.execute(
        f"SELECT paused_by, paused_at, instigators FROM {SCHEMA}.pauses WHERE module = %s",
        (module,),
    ).fetchone()
    return {"paused_by": row[0], "paused_at": row[1], "instigators": row[2]} if row else None


def record_discard(conn: psycopg.Connection, module: str, version: str, by: str) -> None:
    ensure(conn)
    conn.execute(
        f"""INSERT INTO {SCHEMA}.discards (module, version, discarded_by) VALUES (%s, %s, %s)
            ON CONFLICT (module, version) DO UPDATE SET discarded_by = EXCLUDED.discarded_by,
              discarded_at = now()""",
        (module, version, by),
    )


def is_discarded(conn: psycopg.Connection, module: str, version: str) -> bool:
    ensure(conn)
    row = conn.execute(
        f"SELECT 1 FROM {SCHEMA}.discards WHERE module = %s AND version = %s", (module, version)
    ).fetchone()
    return row is not None


def is_published(conn: psycopg.Connection, module: str, version: str) -> bool:
    ensure(conn)
    row = conn.execute(
        f"SELECT 1 FROM {SCHEMA}.versions WHERE module = %s AND version = %s", (module, version)
    ).fetchone()
    return row is not None


# --- alerts -------------------------------------------------------------------------------------


def claim_alert(conn: psycopg.Connection, run_id: str, kind: str) -> bool:
    """True the first time (run, kind) is claimed: only then is its alert sent."""
    ensure(conn)
    row = conn.execute(
        f"""INSERT INTO {SCHEMA}.alerts (run_id, kind) VALUES (%s, %s)
            ON CONFLICT DO NOTHING RETURNING run_id""",
        (run_id, kind),
    ).fetchone()
    return row is not None
