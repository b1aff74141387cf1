"""Publish a version into PostgreSQL with COPY, atomically.

`snapshot` (default): every version gets its own table `<table>__v<major>_<minor>_<patch>`, and
the view `<table>` points at the current version. Loading the tables, switching the views and
recording the version in `dm_registry.versions` happen in ONE transaction: a consumer sees the
old version or the new one, never half of it, and a killed upload leaves the old one in place.
Re-publishing a version replaces its table, so re-runs never duplicate rows.

`append`: one table `<table>` accumulates records; a record whose row hash is already present is
not inserted again (seed 002's behaviour: uploading unchanged sources adds nothing).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from psycopg.rows import dict_row

from etl_assets.quarantine import ROW_HASH_COLUMN
from etl_assets.versions import parse as parse_version

REGISTRY_SCHEMA = "dm_registry"
COPY_CHUNK = 1 << 20
COPY_BATCH_ROWS = 64_000

REGISTRY_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {REGISTRY_SCHEMA};
CREATE TABLE IF NOT EXISTS {REGISTRY_SCHEMA}.versions (
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
"""


def pg_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "double precision"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    return "text"


def version_table(table: str, version: str) -> str:
    return f"{table}__v{version.replace('.', '_')}"


def to_arrow(df: pd.DataFrame | pa.Table) -> pa.Table:
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    # text for anything PostgreSQL's CSV input would not read back exactly
    cols = []
    for f in table.schema:
        col = table.column(f.name)
        if pg_type(f.type) == "text" and not pa.types.is_string(f.type):
            col = col.cast(pa.string()) if not pa.types.is_large_string(f.type) else col
        cols.append(col)
    return pa.table(cols, names=table.schema.names)


def _binary_ready(table: pa.Table) -> pa.Table:
    """Arrow types matching the columns `create_table` makes (binary COPY needs exact types)."""
    cols = []
    for f in table.schema:
        col, t = table.column(f.name), f.type
        if pa.types.is_integer(t) and t != pa.int64():
            col = col.cast(pa.int64())
        elif (pa.types.is_floating(t) or pa.types.is_decimal(t)) and t != pa.float64():
            col = col.cast(pa.float64())
        elif pa.types.is_timestamp(t) and t.unit != "us":
            col = col.cast(pa.timestamp("us", t.tz))
        elif pa.types.is_date64(t):
            col = col.cast(pa.date32())
        elif pa.types.is_dictionary(t):
            col = col.cast(t.value_type)
        cols.append(col)
    return pa.table(cols, names=table.schema.names)


def copy_arrow(
    cur: psycopg.Cursor, target: sql.Composable, table: pa.Table, binary: bool = True
) -> int:
    """COPY an Arrow table into `target`: binary (pgpq) by default; CSV (unquoted empty = NULL,
    quoted "" = '') for columns whose binary form differs from Arrow's (e.g. jsonb)."""
    columns = sql.SQL(", ").join(sql.Identifier(n) for n in table.schema.names)
    if binary:
        from pgpq import ArrowToPostgresBinaryEncoder

        table = _binary_ready(table)
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(target, columns)
        encoder = ArrowToPostgresBinaryEncoder(table.schema)
        with cur.copy(stmt) as copy:
            copy.write(encoder.write_header())
            for batch in table.to_batches(max_chunksize=COPY_BATCH_ROWS):
                copy.write(encoder.write_batch(batch))
            copy.write(encoder.finish())
        return table.num_rows
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, columns)
    buf = io.BytesIO()
    pacsv.write_csv(
        table,
        buf,
        write_options=pacsv.WriteOptions(include_header=False, quoting_style="needed"),
    )
    view = buf.getbuffer()
    with cur.copy(stmt) as copy:
        for start in range(0, len(view), COPY_CHUNK):
            copy.write(view[start : start + COPY_CHUNK])
    return table.num_rows


def create_table(cur: psycopg.Cursor, target: sql.Composable, schema: pa.Schema) -> None:
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(pg_type(f.type))) for f in schema
    )
    cur.execute(sql.SQL("CREATE TABLE {} ({})").format(target, cols))


def row_hash(df: pd.DataFrame) -> pd.Series:
    """A 64-bit hash of each record's data columns (not our `_dm_` bookkeeping columns)."""
    data_cols = [c for c in df.columns if not str(c).startswith("_dm_")]
    hashed = pd.util.hash_pandas_object(df[data_cols], index=False).to_numpy()
    return pd.Series(hashed.view("int64"), index=df.index, dtype="int64[pyarrow]")


@dataclass
class PublishResult:
    schema: str
    tables: dict[str, str]  # published table -> the relation consumers read
    rows: dict[str, int]  # published table -> rows in this version
    inserted: dict[str, int]  # rows actually added (append mode: only new ones)


def ensure_registry(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('dm_registry_ddl'))")
        conn.execute(REGISTRY_DDL)


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
) -> PublishResult:
    """Load every table of the version and make it current, all in one transaction."""
    ensure_registry(conn)
    result = PublishResult(schema=schema, tables={}, rows={}, inserted={})
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"dm_publish:{module}",))
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        # the views follow the highest published version: re-publishing an older one keeps them
        cur.execute(f"SELECT version FROM {REGISTRY_SCHEMA}.versions WHERE module = %s", (module,))
        others = [r[0] for r in cur.fetchall() if r[0] != version]
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
        record_version(
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
) -> None:
    """Record a published version in the registry (any sink; inside the caller's transaction)."""
    cur.execute(
        f"""INSERT INTO {REGISTRY_SCHEMA}.versions
            (module, version, metadata_hash, sink, location, tables, row_counts, run_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (module, version) DO UPDATE SET
              published_at = now(), metadata_hash = EXCLUDED.metadata_hash,
              sink = EXCLUDED.sink, location = EXCLUDED.location, tables = EXCLUDED.tables,
              row_counts = EXCLUDED.row_counts, run_id = EXCLUDED.run_id""",
        (
            module,
            version,
            metadata_hash,
            sink,
            location,
            json.dumps(tables),
            json.dumps(rows),
            run_id,
        ),
    )


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


def _load_quarantine(cur: psycopg.Cursor, schema: str, version: str, q: pd.DataFrame) -> None:
    target = sql.Identifier(schema, "_quarantine")
    cur.execute(
        sql.SQL(
            'CREATE TABLE IF NOT EXISTS {} ("table" text, source text, action text, rule text,'
            ' "column" text, reason text, value text, record jsonb, version text)'
        ).format(target)
    )
    cur.execute(sql.SQL("DELETE FROM {} WHERE version = %s").format(target), (version,))
    if len(q):
        copy_arrow(cur, target, to_arrow(q.astype("string")), binary=False)


def list_versions(conn: psycopg.Connection, module: str) -> list[dict]:
    """Published versions of `module`, newest first."""
    ensure_registry(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""SELECT version, published_at, metadata_hash, sink, location, tables, row_counts,
                       run_id
                FROM {REGISTRY_SCHEMA}.versions WHERE module = %s ORDER BY published_at DESC""",
            (module,),
        )
        return list(cur.fetchall())
