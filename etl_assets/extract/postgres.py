"""The PostgreSQL connector: one query against a connection (or one shard of a sharded entry).

Rows stream out with `COPY (query) TO STDOUT` as CSV with every non-null value quoted, and are
parsed by pyarrow: NULL stays null, '' stays an empty string, and numbers and booleans keep
their type; other types arrive as text and are typed by the cleaning stage.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from etl_assets.connections import postgres_url
from etl_assets.errors import ExtractionError
from etl_assets.extract.sql.messages import restricted_detail, server_message
from etl_assets.metadata import CollectionEntry, PostgresConnector
from resources.postgres import PostgresResource

# PostgreSQL type oid -> Arrow type kept as is; everything else is read as text
ARROW_TYPES = {
    16: pa.bool_(),  # bool
    20: pa.int64(),  # int8
    21: pa.int64(),  # int2
    23: pa.int64(),  # int4
    700: pa.float64(),  # float4
    701: pa.float64(),  # float8
    1700: pa.float64(),  # numeric
}


def _failed(where: str, exc: psycopg.Error, body: str) -> ExtractionError:
    """The server's error with every quoted value that is not from the query masked (a cast
    that fails mid-COPY quotes the row's value); the full text goes to the restricted zone."""
    raw = str(exc).strip()
    shown = server_message(raw, body)
    return ExtractionError(
        f"{where}: the query failed: {shown}", restricted_detail=restricted_detail(raw, shown)
    )


def query_to_arrow(conn: psycopg.Connection, query: str, where: str) -> pa.Table:
    """Run `query` and return its rows as an Arrow table (vectorized CSV COPY)."""
    body = query.strip().rstrip(";")
    try:
        return _query_to_arrow(conn, body, where)
    except psycopg.Error as exc:
        raise _failed(where, exc, body) from None


def _query_to_arrow(conn: psycopg.Connection, body: str, where: str) -> pa.Table:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM ({}) AS q LIMIT 0").format(sql.SQL(body)))
        names = [d.name for d in cur.description]
        types = {d.name: ARROW_TYPES.get(d.type_code, pa.string()) for d in cur.description}
        if len(set(names)) != len(names):
            raise ExtractionError(f"{where}: the query returns duplicate column names {names}")
        buf = io.BytesIO()
        stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER false, FORCE_QUOTE *)").format(
            sql.SQL(body)
        )
        with cur.copy(stmt) as copy:
            for chunk in copy:
                buf.write(chunk)
    if not buf.tell():
        return pa.table({n: pa.array([], types[n]) for n in names})
    buf.seek(0)
    return pacsv.read_csv(
        buf,
        read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            null_values=[""],
            true_values=["t"],
            false_values=["f"],
        ),
    )


def extract_postgres(entry: CollectionEntry, folder: Path, context: Any) -> pd.DataFrame:
    """The query's rows from the entry's connection (for a shard: that shard's connection)."""
    connector: PostgresConnector = entry.extract
    if connector.connection is None:  # a sharded entry is split into units by the factory
        raise ExtractionError(
            f"{entry.table}/{entry.source}: a sharded postgres source runs one step per shard"
        )
    conn = context.connection(connector.connection, "postgres")
    where = f"PostgreSQL connection {conn.name!r}"
    resource = PostgresResource(url=postgres_url(conn))
    with resource.connect(autocommit=False) as pg:
        pg.read_only = True
        table = query_to_arrow(pg, connector.query, where)
    return table.to_pandas(types_mapper=pd.ArrowDtype)
