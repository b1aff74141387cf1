"""Published versions: recording, the current one, metadata documents, expiry."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.rows import dict_row

from etl_assets import semver
from etl_assets.registry.schema import EXPIRED, PUBLISHED, SCHEMA, ensure

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
