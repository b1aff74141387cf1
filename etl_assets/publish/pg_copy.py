"""Arrow into PostgreSQL with COPY: column types, binary COPY through pgpq (CSV where the binary
form differs), and the row hash that append mode and the Kafka sink key records by."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pgpq import ArrowToPostgresBinaryEncoder
from psycopg import sql

COPY_CHUNK = 1 << 20
COPY_BATCH_ROWS = 64_000


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


class ParquetSource:
    """A Parquet table loaded batch by batch: COPY never needs all of it in memory."""

    def __init__(self, file: pq.ParquetFile, batch_rows: int = COPY_BATCH_ROWS):
        self.file, self.batch_rows = file, batch_rows
        # the columns as PostgreSQL will get them (the same conversions as a whole table)
        self.schema = _binary_ready(to_arrow(file.schema_arrow.empty_table())).schema

    @property
    def num_rows(self) -> int:
        return self.file.metadata.num_rows

    def __len__(self) -> int:
        return self.num_rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        for batch in self.file.iter_batches(batch_size=self.batch_rows):
            yield from _binary_ready(to_arrow(pa.Table.from_batches([batch]))).to_batches()


def to_arrow(df: pd.DataFrame | pa.Table | ParquetSource) -> pa.Table | ParquetSource:
    if isinstance(df, ParquetSource):
        return df  # converted batch by batch as it is copied
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


def copy_batches(cur: psycopg.Cursor, target: sql.Composable, source: ParquetSource) -> int:
    """Binary COPY of a Parquet source, one pgpq-encoded batch after another."""
    columns = sql.SQL(", ").join(sql.Identifier(n) for n in source.schema.names)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(target, columns)
    encoder = ArrowToPostgresBinaryEncoder(source.schema)
    rows = 0
    with cur.copy(stmt) as copy:
        copy.write(encoder.write_header())
        for batch in source.batches():
            copy.write(encoder.write_batch(batch))
            rows += batch.num_rows
        copy.write(encoder.finish())
    return rows


def copy_arrow(
    cur: psycopg.Cursor,
    target: sql.Composable,
    table: pa.Table | ParquetSource,
    binary: bool = True,
) -> int:
    """COPY an Arrow table (or a Parquet source, batch by batch) into `target`: binary (pgpq)
    by default; CSV (unquoted empty = NULL, quoted "" = '') for columns whose binary form
    differs from Arrow's (e.g. jsonb)."""
    if isinstance(table, ParquetSource):
        return copy_batches(cur, target, table)
    columns = sql.SQL(", ").join(sql.Identifier(n) for n in table.schema.names)
    if binary:
        table = _binary_ready(table)
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(target, columns)
        encoder = ArrowToPostgresBinaryEncoder(table.schema)
        with cur.copy(stmt) as copy:
            copy.write(encoder.write_header())
            for batch in table.to_batches(max_chunksize=COPY_BATCH_ROWS):
                copy.write(encoder.write_batch(batch))
            copy.write(encoder.finish())
        return table.num_rows
    return copy_csv_batches(cur, target, table.schema.names, table.to_batches(COPY_BATCH_ROWS))


def copy_csv_batches(
    cur: psycopg.Cursor,
    target: sql.Composable,
    names: list[str],
    batches: Iterable[pa.RecordBatch],
) -> int:
    """CSV COPY of `batches` (columns `names`, in order), one batch in memory at a time: unquoted
    empty = NULL, quoted "" = ''."""
    columns = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, columns)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    rows = 0
    with cur.copy(stmt) as copy:
        for batch in batches:
            buf = io.BytesIO()
            pacsv.write_csv(batch.select(names), buf, write_options=options)
            view = buf.getbuffer()
            for start in range(0, len(view), COPY_CHUNK):
                copy.write(view[start : start + COPY_CHUNK])
            rows += batch.num_rows
            del view, buf
    return rows


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
