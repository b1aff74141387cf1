"""The PostgreSQL sink: a version loaded with COPY and made current atomically.

`snapshot` (default): every version gets its own table `<table>__v<major>_<minor>_<patch>`, and
the view `<table>` points at the current version (the highest published one). The upload runs
in two transactions (`pg_swap.py`): the *load* COPYs every table into `<schema>__staging`,
holding no lock a consumer waits on; the *swap* loads the quarantine, records the version in
`dm_registry.versions`, moves the tables into `<schema>` and points the views at them with
`CREATE OR REPLACE VIEW`. Consumers see the old version or the new one, never half of it; a
killed upload leaves the old one in place (and at most a staging table the next upload drops).
Re-publishing a version replaces its table, so re-runs never duplicate rows.

`append`: one table `<table>` accumulates records; a record whose row hash is already present is
not inserted again (seed 002's behaviour: uploading unchanged sources adds nothing).

The quarantine (original records) goes to `<schema>__restricted.quarantine`, and the grants of
the two zones (`grants.py`) are applied in the swap transaction.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql

from etl_assets import registry
from etl_assets.connections import Lookup, connection_or_default, postgres_url
from etl_assets.metadata import DataModule
from etl_assets.publish import grants, pg_swap
from etl_assets.publish.grants import Roles, restricted_schema
from etl_assets.publish.pg_copy import (
    copy_arrow,
    copy_csv_batches,
    create_table,
    row_hash,
    to_arrow,
)
from etl_assets.publish.pg_swap import SwapError, ViewPlan, staging_schema
from etl_assets.publish.sink import PublishReport, PublishRequest, QuarantineSource, table_sources
from etl_assets.quarantine import QUARANTINE_COLUMNS, ROW_HASH_COLUMN
from resources.postgres import PostgresResource

DEFAULT_ROLES = Roles()
SWAP_LOCK_TIMEOUT = "2s"  # how long the swap waits for a consumer's query before trying again
SWAP_ATTEMPTS = 10


def version_table(table: str, version: str) -> str:
    return f"{table}__v{version.replace('.', '_')}"


@dataclass
class PublishResult:
    schema: str
    tables: dict[str, str]  # published table -> this version's own relation
    rows: dict[str, int]  # published table -> rows in this version
    inserted: dict[str, int]  # rows actually added (append mode: only new ones)
    current: str | None = None  # the version `<schema>.<table>` serves after this upload
    served: dict[str, str] = field(default_factory=dict)  # table -> the view, if it is current
    views: dict[str, str] = field(default_factory=dict)  # table -> created|replaced|recreated
    load_seconds: float = 0.0  # the load transaction (readers do not wait for it)
    swap_seconds: float = 0.0  # the swap transaction(s), lock waits included


@dataclass
class _Staged:
    relation: str  # the version's table name
    columns: pg_swap.Columns
    plan: ViewPlan


@contextmanager
def _module_lock(conn: psycopg.Connection, module: str) -> Iterator[None]:
    """One upload of a module at a time, across the load and the swap transactions."""
    key = f"dm_publish:{module}"
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


def publish(
    conn: psycopg.Connection,
    *,
    module: str,
    version: str,
    schema: str,
    tables: dict[str, pd.DataFrame | pa.Table],
    quarantine: pd.DataFrame | QuarantineSource | None,
    metadata_hash: str,
    mode: str = "snapshot",
    run_id: str | None = None,
    location: str = "",
    roles: Roles = DEFAULT_ROLES,
    document: dict[str, Any] | None = None,
) -> PublishResult:
    """Load every table of the version and make it current (see the module docstring); the
    quarantine goes to the restricted schema, and the zones' grants are applied again. `conn`
    must be in autocommit mode: the load and the swap commit separately."""
    if not conn.autocommit:
        raise ValueError("publish needs an autocommit connection (it commits load and swap)")
    registry.ensure(conn)
    result = PublishResult(schema=schema, tables={}, rows={}, inserted={})
    for name, data in tables.items():
        result.rows[name] = len(data) if isinstance(data, pd.DataFrame) else data.num_rows
    record = dict(
        module=module,
        version=version,
        metadata_hash=metadata_hash,
        sink=f"postgres:{mode}",
        location=location or schema,
        rows=result.rows,
        run_id=run_id,
        document=document,
    )
    with _module_lock(conn, module):
        started = time.perf_counter()
        staged = {} if mode == "append" else _load(conn, schema, version, tables, result)
        result.load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for attempt in range(SWAP_ATTEMPTS):
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
                    _swap(cur, schema, version, tables, staged, quarantine, mode, result, record)
                    grants.apply(cur, schema, roles)
                break
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
                time.sleep(min(0.1 * 2**attempt, 2.0))
        else:
            raise SwapError(
                f"{module} {version}: the switch of {schema}'s views waited {SWAP_ATTEMPTS} times"
                f" {SWAP_LOCK_TIMEOUT} for consumers' queries to end; the version is loaded in"
                f" {staging_schema(schema)} but not published: run the upload again"
            )
        result.swap_seconds = time.perf_counter() - started
    return result


def _load(
    conn: psycopg.Connection,
    schema: str,
    version: str,
    tables: dict[str, pd.DataFrame | pa.Table],
    result: PublishResult,
) -> dict[str, _Staged]:
    """The load transaction: every table COPYed into the staging schema, and a check that the
    swap will be able to switch the views (failing before the load when it will not)."""
    staging = staging_schema(schema)
    staged = {}
    with conn.transaction(), conn.cursor() as cur:
        _ensure_schemas(cur, schema, staging)
        cur.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(staging)))
        pg_swap.drop_stale_staging(cur, schema, list(tables))
        for name, data in tables.items():
            arrow = to_arrow(data)
            relation = version_table(name, version)
            target = sql.Identifier(staging, relation)
            create_table(cur, target, arrow.schema)
            _, columns = pg_swap.relation_columns(cur, staging, relation)
            plan = pg_swap.plan_view(cur, schema, name, version, columns)
            pg_swap.check_replaceable(cur, schema, relation, name)
            result.inserted[name] = copy_arrow(cur, target, arrow)
            cur.execute(sql.SQL("ANALYZE {}").format(target))
            staged[name] = _Staged(relation, columns, plan)
    return staged


def _ensure_schemas(cur: psycopg.Cursor, schema: str, *more: str) -> None:
    for name in (schema, restricted_schema(schema), *more):
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(name)))


def _swap(
    cur: psycopg.Cursor,
    schema: str,
    version: str,
    tables: dict[str, Any],
    staged: dict[str, _Staged],
    quarantine: pd.DataFrame | QuarantineSource | None,
    mode: str,
    result: PublishResult,
    record: dict[str, Any],
) -> None:
    """The swap transaction: what only takes row locks first, the DDL that readers of the views
    wait for last, so they wait as briefly as possible."""
    if mode == "append":
        _ensure_schemas(cur, schema)
        for name, data in tables.items():
            result.inserted[name] = _append(cur, schema, name, data, version)
            result.tables[name] = f"{schema}.{name}"
    else:
        result.tables = {n: f"{schema}.{s.relation}" for n, s in staged.items()}
    if quarantine is not None:
        _load_quarantine(cur, schema, version, quarantine)
    result.current = registry.record_version(cur, tables=result.tables, **record)
    is_current = result.current == version
    result.served = {n: f"{schema}.{n}" for n in tables} if is_current else {}
    token = secrets.token_hex(4)
    if is_current:
        for name in sorted(staged):
            pg_swap.lock_view(cur, schema, name)
    for name, s in staged.items():
        aside = pg_swap.set_aside(cur, schema, s.relation, token)
        cur.execute(
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                sql.Identifier(staging_schema(schema), s.relation), sql.Identifier(schema)
            )
        )
        if is_current:
            # planned again: a consumer may have built a view since the load
            plan = pg_swap.plan_view(cur, schema, name, version, s.columns)
            pg_swap.point_view(cur, schema, name, s.relation, plan)
            result.views[name] = {"create": "created", "replace": "replaced"}.get(
                plan.action, "recreated"
            )
        if aside is not None:
            pg_swap.check_replaceable(cur, schema, aside, name)
            cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, aside)))


def _append(cur: psycopg.Cursor, schema: str, name: str, data: pd.DataFrame, version: str) -> int:
    df = data.to_pandas(types_mapper=pd.ArrowDtype) if isinstance(data, pa.Table) else data
    df = df.copy()
    df[ROW_HASH_COLUMN] = row_hash(df)
    df = df.drop_duplicates(subset=[ROW_HASH_COLUMN])
    df["_dm_version"] = pd.Series(version, index=df.index, dtype="string[pyarrow]")
    arrow = to_arrow(df)
    target = sql.Identifier(schema, name)
    cur.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        (schema, name),
    )
    if cur.fetchone() is None:
        create_table(cur, target, arrow.schema)
        cur.execute(
            sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(
                target, sql.Identifier(ROW_HASH_COLUMN)
            )
        )
    staging = sql.Identifier(f"_dm_staging_{name}")
    cur.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(staging, target))
    copy_arrow(cur, staging, arrow)
    cols = sql.SQL(", ").join(sql.Identifier(n) for n in arrow.schema.names)
    cur.execute(
        sql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM {s} ON CONFLICT ({h}) DO NOTHING").format(
            t=target, c=cols, s=staging, h=sql.Identifier(ROW_HASH_COLUMN)
        )
    )
    return cur.rowcount


QUARANTINE_DDL = (
    'CREATE TABLE IF NOT EXISTS {} ("table" text, source text, action text, rule text,'
    ' "column" text, reason text, value text, record jsonb, version text)'
)


def _load_quarantine(
    cur: psycopg.Cursor, schema: str, version: str, q: pd.DataFrame | QuarantineSource
) -> None:
    """The version's quarantine into `<schema>__restricted.quarantine` (never the published
    schema; a `_quarantine` table left there by an earlier release is moved): from the outbox
    batch by batch, or a DataFrame."""
    target = sql.Identifier(restricted_schema(schema), "quarantine")
    cur.execute(sql.SQL(QUARANTINE_DDL).format(target))
    cur.execute("SELECT to_regclass(%s)", (f'"{schema}"._quarantine',))
    if cur.fetchone()[0] is not None:
        old = sql.Identifier(schema, "_quarantine")
        cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(target, old))
        cur.execute(sql.SQL("DROP TABLE {}").format(old))
    cur.execute(sql.SQL("DELETE FROM {} WHERE version = %s").format(target), (version,))
    if isinstance(q, QuarantineSource):
        copy_csv_batches(cur, target, QUARANTINE_COLUMNS, q.batches())
    elif len(q):
        copy_arrow(cur, target, to_arrow(q.astype("string")), binary=False)


def sink_target(
    model: DataModule, postgres: PostgresResource, lookup: Lookup
) -> tuple[PostgresResource, str]:
    """The database (the deployment's, or the sink's named connection's) and the schema a
    module's postgres sink publishes into."""
    sink = model.upload.sink
    target = postgres
    if sink.connection:
        url = postgres_url(connection_or_default(model, sink.connection, "postgres", lookup))
        target = PostgresResource(
            url=url,
            consumer_role=postgres.consumer_role,
            data_manager_role=postgres.data_manager_role,
        )
    return target, sink.schema_ or f"dm_{model.name}"


class PostgresSink:
    """Publishes into the deployment's PostgreSQL, or the database of a named connection."""

    def publish(self, request: PublishRequest) -> PublishReport:
        model = request.loaded.model
        sink = model.upload.sink
        target, schema = sink_target(model, request.postgres, request.secrets.get)
        location = f"{target.display_url} schema {schema}"
        with target.connect(autocommit=True) as conn:
            result = publish(
                conn,
                module=model.name,
                version=request.version,
                schema=schema,
                # snapshot loads stream from the outbox; append needs the row hashes in memory
                tables=table_sources(request) if sink.mode == "snapshot" else request.tables,
                quarantine=request.quarantine,
                metadata_hash=request.loaded.hash,
                mode=sink.mode,
                run_id=request.run_id,
                location=location,
                roles=Roles(request.postgres.consumer_role, request.postgres.data_manager_role),
                document=request.loaded.document,
            )
        for name, how in result.views.items():
            request.info(f"{schema}.{name}: view {how} for {request.version}")
        return PublishReport(
            sink=f"postgres:{sink.mode}",
            rows=result.rows,
            inserted=result.inserted,
            locations=result.tables,
            location=location,
            registered=target is request.postgres,
            current_version=result.current,
            served=result.served,
            seconds={"load": result.load_seconds, "swap": result.swap_seconds},
        )
