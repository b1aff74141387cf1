"""The PostgreSQL sink: a version loaded with COPY and made current atomically.

`snapshot` (default): every version gets its own table `<table>__v<major>_<minor>_<patch>`, and
the view `<table>` points at the current version. Loading the tables, switching the views and
recording the version in `dm_registry.versions` happen in ONE transaction: a consumer sees the
old version or the new one, never half of it, and a killed upload leaves the old one in place.
Re-publishing a version replaces its table, so re-runs never duplicate rows.

`append`: one table `<table>` accumulates records; a record whose row hash is already present is
not inserted again (seed 002's behaviour: uploading unchanged sources adds nothing).

The quarantine (original records) goes to `<schema>__restricted.quarantine`, and the grants of
the two zones (`grants.py`) are applied in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql

from etl_assets import registry
from etl_assets.connections import postgres_url
from etl_assets.publish import grants
from etl_assets.publish.grants import Roles, restricted_schema
from etl_assets.publish.pg_copy import copy_arrow, create_table, row_hash, to_arrow
from etl_assets.publish.sink import PublishReport, PublishRequest, table_sources
from etl_assets.quarantine import ROW_HASH_COLUMN
from etl_assets.semver import parse as parse_version
from resources.postgres import PostgresResource

DEFAULT_ROLES = Roles()


def version_table(table: str, version: str) -> str:
    return f"{table}__v{version.replace('.', '_')}"


@dataclass
class PublishResult:
    schema: str
    tables: dict[str, str]  # published table -> the relation consumers read
    rows: dict[str, int]  # published table -> rows in this version
    inserted: dict[str, int]  # rows actually added (append mode: only new ones)


def publish(
    conn: psycopg.Connection,
    *,
    module: str,
    version: str,
    schema: str,
    tables: dict[str, pd.DataFrame | pa.Table],
    quarantine: pd.DataFrame | None,
    metadata_hash: str,
    mode: str = "snapshot",
    run_id: str | None = None,
    location: str = "",
    roles: Roles = DEFAULT_ROLES,
) -> PublishResult:
    """Load every table of the version and make it current, all in one transaction; the
    quarantine goes to the restricted schema, and the zones' grants are applied again."""
    registry.ensure(conn)
    result = PublishResult(schema=schema, tables={}, rows={}, inserted={})
    restricted = restricted_schema(schema)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"dm_publish:{module}",))
        for name in (schema, restricted):
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(name)))
        # the views follow the highest published version: re-publishing an older one keeps them
        others = [v for v in registry.published_versions(cur, module) if v != version]
        current = not others or parse_version(version) > max(map(parse_version, others))
        for name, data in tables.items():
            if mode == "append":
                result.inserted[name] = _append(cur, schema, name, data, version)
                result.tables[name] = f"{schema}.{name}"
            else:
                arrow = to_arrow(data)
                vt = sql.Identifier(schema, version_table(name, version))
                view = sql.Identifier(schema, name)
                if current:
                    cur.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(view))
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(vt))
                create_table(cur, vt, arrow.schema)
                result.inserted[name] = copy_arrow(cur, vt, arrow)
                if current:
                    cur.execute(sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(view, vt))
                result.tables[name] = (
                    f"{schema}.{name if current else version_table(name, version)}"
                )
            result.rows[name] = len(data) if isinstance(data, pd.DataFrame) else data.num_rows
        if quarantine is not None:
            _load_quarantine(cur, schema, version, quarantine)
        grants.apply(cur, schema, roles)
        registry.record_version(
            cur,
            module=module,
            version=version,
            metadata_hash=metadata_hash,
            sink=f"postgres:{mode}",
            location=location or schema,
            tables=result.tables,
            rows=result.rows,
            run_id=run_id,
        )
    return result


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


def _load_quarantine(cur: psycopg.Cursor, schema: str, version: str, q: pd.DataFrame) -> None:
    """The version's quarantine into `<schema>__restricted.quarantine` (never the published
    schema; a `_quarantine` table left there by an earlier release is moved)."""
    target = sql.Identifier(restricted_schema(schema), "quarantine")
    cur.execute(sql.SQL(QUARANTINE_DDL).format(target))
    cur.execute("SELECT to_regclass(%s)", (f'"{schema}"._quarantine',))
    if cur.fetchone()[0] is not None:
        old = sql.Identifier(schema, "_quarantine")
        cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(target, old))
        cur.execute(sql.SQL("DROP TABLE {}").format(old))
    cur.execute(sql.SQL("DELETE FROM {} WHERE version = %s").format(target), (version,))
    if len(q):
        copy_arrow(cur, target, to_arrow(q.astype("string")), binary=False)


class PostgresSink:
    """Publishes into the deployment's PostgreSQL, or the database of a named connection."""

    def publish(self, request: PublishRequest) -> PublishReport:
        model = request.loaded.model
        sink = model.upload.sink
        target = request.postgres
        if sink.connection:
            url = postgres_url(request.connection(sink.connection, "postgres"))
            target = PostgresResource(
                url=url,
                consumer_role=request.postgres.consumer_role,
                data_manager_role=request.postgres.data_manager_role,
            )
        schema = sink.schema_ or f"dm_{model.name}"
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
            )
        return PublishReport(
            sink=f"postgres:{sink.mode}",
            rows=result.rows,
            inserted=result.inserted,
            locations=result.tables,
            location=location,
            registered=target is request.postgres,
        )
