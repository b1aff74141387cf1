"""Approvals of prepared versions, version allocation, and the reads the console lists."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from etl_assets.registry.schema import SCHEMA, ensure

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


def discarded_versions(conn: psycopg.Connection, module: str) -> set[str]:
    """Versions of `module` that were stopped and thrown away (never uploaded)."""
    ensure(conn)
    rows = conn.execute(
        f"SELECT version FROM {SCHEMA}.discards WHERE module = %s", (module,)
    ).fetchall()
    return {r[0] for r in rows}


def withdraw_approval(conn: psycopg.Connection, module: str, version: str) -> None:
    """Forget an approval (the version was rejected or discarded after it)."""
    ensure(conn)
    conn.execute(
        f"DELETE FROM {SCHEMA}.approvals WHERE module = %s AND version = %s", (module, version)
    )
