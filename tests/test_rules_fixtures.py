"""Builders shared by the rules tests: modules from dicts, typed frames like the typing stage's."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pyarrow as pa

from etl_assets.clean.coerce import ARROW_TYPES
from etl_assets.metadata import Table
from etl_assets.metadata.jsonld import CONTEXT_URL as CONTEXT
from etl_assets.metadata.loader import validate_document


def make_module(tables: list[dict], sources: dict[str, list[tuple[str, int]]] | None = None):
    """A module with `tables`; each table gets the given (source, priority) entries, default a/0."""
    sources = sources or {}
    collection = [
        {
            "table": t["name"],
            "source": name,
            "priority": priority,
            "extract": {"type": "file", "path": f"{name}.csv"},
        }
        for t in tables
        for name, priority in sources.get(t["name"], [("a", 0)])
    ]
    return validate_document(
        {"@context": CONTEXT, "name": "m", "tables": tables, "collection": collection}
    )


def typed(table: Table, records: list[dict[str, Any]]) -> pd.DataFrame:
    """Records (dicts with declared columns and `_dm_source`) as the typing stage hands them over."""
    data = {}
    for column in table.columns:
        arrow_type = ARROW_TYPES[column.dataType]
        values = [r.get(column.name) for r in records]
        data[column.name] = pd.Series(
            pd.arrays.ArrowExtensionArray(pa.chunked_array([pa.array(values, type=arrow_type)]))
        )
    data["_dm_source"] = pd.Series(
        pd.arrays.ArrowExtensionArray(
            pa.chunked_array([pa.array([r.get("_dm_source", "a") for r in records], pa.string())])
        )
    )
    return pd.DataFrame(data)


def rows(df: pd.DataFrame, columns: list[str] | None = None) -> list[tuple]:
    """The frame's records as tuples of Python values (None for null), for literal comparison."""
    df = df[columns] if columns else df
    table = pa.Table.from_pandas(df, preserve_index=False)
    return [tuple(r.values()) for r in table.to_pylist()]


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)
