"""The statements a `sql` source sends: the probe that describes the query's result, and the read
query (casts, and the range of a partitioned step).

A partition of n ranges over split points b1 < ... < b(n-1) reads `column < b1` (and the
NULLs) in range 0, `b(i) <= column < b(i+1)` in range i, and `column >= b(n-1)` in the last
one: every row is in exactly one range, whatever its value, because the points are fixed in the
metadata rather than taken from the data when a step starts.
"""

from __future__ import annotations

from etl_assets.extract.sql.dialects import Dialect
from etl_assets.metadata import SqlPartition


def body(query: str) -> str:
    """The query as a derived table's body (no trailing semicolon)."""
    return query.strip().rstrip(";").strip()


def probe_statement(dialect: Dialect, query: str) -> str:
    """A statement that returns the query's columns and no rows."""
    if dialect.kind == "mssql":
        return f"SELECT TOP 0 * FROM ({body(query)}) AS dm_q"
    return f"SELECT * FROM ({body(query)}) AS dm_q LIMIT 0"


def literal(value: int | float | str) -> str:
    """A split point as SQL: numbers as they are, ISO dates quoted (validated by the model)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def range_predicate(dialect: Dialect, partition: SqlPartition, index: int) -> str:
    """The WHERE condition of range `index` (0-based) over the query's result."""
    points = partition.split_points()
    column = f"dm_q.{dialect.quote(partition.column)}"
    parts = []
    if index > 0:
        parts.append(f"{column} >= {literal(points[index - 1])}")
    if index < len(points):
        parts.append(f"{column} < {literal(points[index])}")
    condition = " AND ".join(parts)
    return f"({column} IS NULL OR {condition})" if index == 0 else condition


def range_label(partition: SqlPartition, index: int) -> str:
    """The range in words for logs, metadata and errors (split points come from the metadata)."""
    points = partition.split_points()
    lo = f"{partition.column} >= {points[index - 1]!r}" if index > 0 else ""
    hi = f"{partition.column} < {points[index]!r}" if index < len(points) else ""
    text = " and ".join(p for p in (lo, hi) if p)
    if index == 0:
        text += f" or {partition.column} is null"
    return f"range {index + 1} of {len(points) + 1} ({text})"


def read_statement(
    dialect: Dialect, query: str, select: list[str] | None, predicate: str | None
) -> str:
    """The statement connectorx runs: the query as a derived table, its columns cast where
    needed (`select`; None: as they are), restricted to one range (`predicate`)."""
    columns = ", ".join(select) if select else "*"
    where = f" WHERE {predicate}" if predicate else ""
    if select is None and predicate is None:
        return body(query)
    return f"SELECT {columns} FROM ({body(query)}) AS dm_q{where}"
