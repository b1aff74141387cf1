"""The quarantine: every record a rule rejected or changed, with the rule and the reason."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa

SOURCE_COLUMN = "_dm_source"
SHARD_COLUMN = "_dm_shard"
ROW_HASH_COLUMN = "_dm_row_hash"
RAW_COLUMN = "_dm_raw"  # the raw text of a record a reader could not split into fields

QUARANTINE_SCHEMA = pa.schema(
    [
        ("table", pa.string()),
        ("source", pa.string()),
        ("action", pa.string()),  # rejected | modified
        (
            "rule",
            pa.string(),
        ),  # type | strict | empty | range | primaryKey | foreignKey | duplicate
        ("column", pa.string()),
        ("reason", pa.string()),  # a reason code, e.g. not_integer, below_min, dangling_reference
        ("value", pa.string()),  # the original value, as text
        ("record", pa.string()),  # the original record, as JSON
        ("version", pa.string()),
    ]
)
QUARANTINE_COLUMNS = QUARANTINE_SCHEMA.names


def empty_quarantine() -> pd.DataFrame:
    return QUARANTINE_SCHEMA.empty_table().to_pandas()


def quarantine_file_schema() -> pa.Schema:
    """The schema of a quarantine file written batch by batch: QUARANTINE_SCHEMA with the
    pandas metadata a DataFrame's file has, so both read back alike."""
    frame = empty_quarantine().astype(pd.StringDtype("pyarrow"))
    return QUARANTINE_SCHEMA.with_metadata(
        pa.Schema.from_pandas(frame, preserve_index=False).metadata
    )


def quarantine_arrow(df: pd.DataFrame) -> pa.Table:
    """Quarantine rows as QUARANTINE_SCHEMA (every column text)."""
    table = pa.Table.from_pandas(df[QUARANTINE_COLUMNS], preserve_index=False)
    return table.cast(QUARANTINE_SCHEMA).replace_schema_metadata(None)


def _records_json(rows: pd.DataFrame) -> pd.Series:
    """Each row as a JSON object (dates as ISO strings), vectorized through pandas' writer."""
    data = rows.drop(columns=[c for c in rows.columns if c.startswith("_dm_")], errors="ignore")
    if data.empty:
        return pd.Series([], dtype="string", index=rows.index)
    lines = data.to_json(orient="records", lines=True, date_format="iso", default_handler=str)
    return pd.Series(lines.rstrip("\n").split("\n"), index=rows.index, dtype="string")


def quarantine_rows(
    rows: pd.DataFrame,
    *,
    table: str,
    rule: str,
    reason: str | pd.Series,
    column: str | None,
    version: str,
    action: str = "rejected",
    values: pd.Series | None = None,
) -> pd.DataFrame:
    """Quarantine records for `rows` (the original records) with one rule and reason each."""
    n = len(rows)
    if n == 0:
        return empty_quarantine()
    if values is None:
        values = rows[column] if column is not None and column in rows.columns else None
    value_text = (
        values.astype("string")
        if values is not None
        else pd.Series(pd.NA, index=rows.index, dtype="string")
    )
    source = (
        rows[SOURCE_COLUMN].astype("string")
        if SOURCE_COLUMN in rows.columns
        else pd.Series(pd.NA, index=rows.index, dtype="string")
    )
    out = pd.DataFrame(
        {
            "table": table,
            "source": source,
            "action": action,
            "rule": rule,
            "column": column,
            "reason": reason,
            "value": value_text,
            "record": _records_json(rows),
            "version": version,
        },
        index=rows.index,
    )
    return out.astype("string").reset_index(drop=True)


def concat_quarantine(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_quarantine()
    return pd.concat(parts, ignore_index=True)[QUARANTINE_COLUMNS]


def records_from_json(text: str) -> dict:
    """Inverse of the `record` column, for readers of the quarantine."""
    return json.loads(text)
