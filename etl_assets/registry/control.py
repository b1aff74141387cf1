"""What run control and alerts record: skip requests, pauses, discards, alerts sent."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg

from etl_assets.registry.schema import SCHEMA, ensure

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
