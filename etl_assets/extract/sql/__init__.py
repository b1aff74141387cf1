"""The `sql` connector: a query against a MySQL/MariaDB, PostgreSQL or SQL Server connection,
read into Arrow by connectorx; one step per shard and, with `partition`, per range.

One step: resolve the connection (secrets through the deployment), describe the query with the
database's own driver in a read-only transaction (login and query errors at once, column types),
build the read statement (lossy types cast to text, the step's range), and read it with
connectorx in a reader process (`run.py`) in a read-only session at UTC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd
import pyarrow as pa

from etl_assets.connections import sql_url
from etl_assets.errors import ExtractionError
from etl_assets.extract.sql import plan
from etl_assets.extract.sql.dialects import DIALECTS, describe, select_expression
from etl_assets.extract.sql.run import read_arrow
from etl_assets.metadata import CollectionEntry, SqlConnector, SqlPartition
from etl_assets.metadata.collection import SQL_CONNECTION_TYPES

__all__ = ["extract_sql", "read_query"]


def read_query(
    kind: str,
    url: str,
    query: str,
    where: str,
    partition: SqlPartition | None = None,
    index: int | None = None,
) -> pa.Table:
    """The rows of `query` (of range `index` of `partition`, if given) as an Arrow table."""
    dialect = DIALECTS[kind]
    parts = urlsplit(url)
    database = unquote(parts.path.lstrip("/"))
    columns = describe(dialect, url, plan.probe_statement(dialect, query), where)
    if columns is not None:
        names = [name for name, _ in columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ExtractionError(f"{where}: the query returns duplicate column names {duplicates}")
        if partition is not None and partition.column not in names:
            raise ExtractionError(
                f"{where}: partition column {partition.column!r} is not a column of the query"
                f" (columns: {', '.join(names)})"
            )
    select = None if columns is None else [select_expression(dialect, *c) for c in columns]
    predicate = None
    if partition is not None and index is not None:
        predicate = plan.range_predicate(dialect, partition, index)
    statement = plan.read_statement(dialect, query, select, predicate)
    secrets = (unquote(parts.password or ""),)
    table = read_arrow(
        url, statement, dialect.pre_execution, where, secrets=secrets, database=database
    )
    if columns is None and len(set(table.schema.names)) != len(table.schema.names):
        raise ExtractionError(
            f"{where}: the query returns duplicate column names {table.schema.names}"
        )
    return table


def extract_sql(entry: CollectionEntry, folder: Path, context: Any) -> pd.DataFrame:
    """The query's rows from the step's connection (a shard's) and range (a partition's)."""
    connector: SqlConnector = entry.extract
    if connector.connection is None:  # a sharded entry is split into units by the factory
        raise ExtractionError(
            f"{entry.table}/{entry.source}: a sharded sql source runs one step per shard"
        )
    index = getattr(context, "partition", None)
    if connector.partition is not None and index is None:
        raise ExtractionError(
            f"{entry.table}/{entry.source}: a partitioned sql source runs one step per range"
        )
    conn = context.connection(connector.connection, SQL_CONNECTION_TYPES)
    where = f"{DIALECTS[conn.type].label} connection {conn.name!r}"
    if connector.partition is not None:
        where += f", {plan.range_label(connector.partition, index)}"
    table = read_query(conn.type, sql_url(conn), connector.query, where, connector.partition, index)
    return table.to_pandas(types_mapper=pd.ArrowDtype)
