"""Typing and strict schema: coerce extracted records to the declared column types.

A value that cannot be coerced rejects its record (rule `type`); a null in a column declared
`nullable: false` whose `empty` rule does not fill or drop it rejects its record (rule `empty`,
reason `null`).
Empty text (blank after stripping) counts as null. Datetimes with an offset are converted to
UTC; datetimes without one are taken as UTC; both are stored without a time zone. In strict mode only declared columns
(and `_dm_source`, `_dm_shard`) are kept; otherwise undeclared columns pass through as text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl_assets.metadata import Column, Table
from etl_assets.quarantine import (
    RAW_COLUMN,
    SHARD_COLUMN,
    SOURCE_COLUMN,
    concat_quarantine,
    quarantine_rows,
)

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us"),
}
TRUE_TEXT = {"true", "t", "yes", "y", "1"}
FALSE_TEXT = {"false", "f", "no", "n", "0"}


def arrow_dtype(data_type: str) -> pd.ArrowDtype:
    return pd.ArrowDtype(ARROW_TYPES[data_type])


def arrow_schema(table: Table) -> pa.Schema:
    """The typed table's Arrow schema: declared columns, then the source column."""
    fields = [pa.field(c.name, ARROW_TYPES[c.dataType], nullable=True) for c in table.columns]
    return pa.schema([*fields, pa.field(SOURCE_COLUMN, pa.string())])


@dataclass
class TypingResult:
    data: pd.DataFrame
    quarantine: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    dropped_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)


def _text_array(s: pd.Series) -> pa.ChunkedArray:
    """`s` as Arrow strings (numbers keep their canonical text)."""
    if not (isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_string(s.dtype.pyarrow_dtype)):
        s = s.astype("string").astype(pd.ArrowDtype(pa.string()))
    return s.array.__arrow_array__()


def _series(values: pa.ChunkedArray, like: pd.Series) -> pd.Series:
    return pd.Series(pd.arrays.ArrowExtensionArray(values), index=like.index, copy=False)


def _stripped(s: pd.Series) -> pa.ChunkedArray:
    """Values as Arrow strings with blanks as null.

    Through Arrow compute, not the `.str` accessor: a Series caches its accessor, which refers
    back to it, so every `.str` call leaves a reference cycle that only a full collection frees
    (batch after batch of typed columns piled up until one ran)."""
    stripped = pc.utf8_trim_whitespace(_text_array(s))
    blank = pc.equal(stripped, "")
    return pc.if_else(blank, pa.scalar(None, pa.string()), stripped)


def _as_text(s: pd.Series) -> pd.Series:
    """Values as pyarrow strings with blanks as null (see `_stripped`)."""
    return _series(_stripped(s), s)


def _is_text(s: pd.Series) -> bool:
    return (
        s.dtype == object
        or (isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_string(s.dtype.pyarrow_dtype))
        or isinstance(s.dtype, pd.StringDtype)
    )


def coerce_column(s: pd.Series, column: Column) -> tuple[pd.Series, np.ndarray]:
    """(typed series, mask of values that were present but could not be coerced)."""
    kind = column.dataType
    target = arrow_dtype(kind)
    if isinstance(s.dtype, pd.ArrowDtype) and s.dtype.pyarrow_dtype == target.pyarrow_dtype:
        return s, np.zeros(len(s), dtype=bool)
    # a text column is stripped once: its blanks are empty, and the parsers read that text
    stripped = _as_text(s) if _is_text(s) else None
    empty = (s if stripped is None else stripped).isna().to_numpy(dtype=bool, na_value=True)

    def text() -> pd.Series:
        return _as_text(s) if stripped is None else stripped

    if kind == "string":
        if isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_string(s.dtype.pyarrow_dtype):
            out = s
        else:
            out = s.astype("string").astype(target)
        return out.mask(pd.Series(empty, index=s.index), None).astype(target), np.zeros(
            len(s), bool
        )
    if kind in ("integer", "number"):
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            num = pd.to_numeric(s, errors="coerce").astype("float64")
            values = num.to_numpy(dtype="float64", na_value=np.nan)
        else:
            values = _parse_numbers(text())
        bad = np.isnan(values) & ~empty
        if kind == "integer":
            fractional = ~np.isnan(values) & (np.floor(values) != values)
            too_big = ~np.isnan(values) & (np.abs(values) > 2**53)
            bad |= fractional | too_big
            values = np.where(bad, np.nan, values)
            arr = pa.array(values, from_pandas=True).cast(pa.int64(), safe=False)
        else:
            arr = pa.array(np.where(bad, np.nan, values), from_pandas=True)
        return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=s.index), bad
    if kind == "boolean":
        if pd.api.types.is_bool_dtype(s.dtype):
            return s.astype(target), np.zeros(len(s), bool)
        lowered = _series(pc.utf8_lower(text().array.__arrow_array__()), s)
        is_true = lowered.isin(TRUE_TEXT).to_numpy(dtype=bool, na_value=False)
        is_false = lowered.isin(FALSE_TEXT).to_numpy(dtype=bool, na_value=False)
        bad = ~(is_true | is_false) & ~empty
        arr = pa.array(np.where(is_true, True, False), mask=~(is_true | is_false))
        return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=s.index), bad
    # date / datetime
    if pd.api.types.is_datetime64_any_dtype(s.dtype) or (
        isinstance(s.dtype, pd.ArrowDtype)
        and (
            pa.types.is_timestamp(s.dtype.pyarrow_dtype) or pa.types.is_date(s.dtype.pyarrow_dtype)
        )
    ):
        parsed = pd.to_datetime(s, errors="coerce", utc=True)
    elif column.format:
        parsed = pd.to_datetime(
            text().astype(object), errors="coerce", format=column.format, utc=True
        )
    else:
        parsed = _parse_iso(text())
    # stored as naive UTC; on the array, not the `.dt` accessor (see `_as_text`)
    naive = pd.DatetimeIndex(parsed).tz_localize(None)
    bad = naive.isna() & ~empty
    if kind == "date":
        arr = pa.array(naive.normalize().astype("datetime64[us]"), from_pandas=True)
        arr = arr.cast(pa.date32())
    else:
        arr = pa.array(naive.astype("datetime64[us]"), from_pandas=True)
    return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=s.index), bad


OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


# A plain decimal number: Arrow parses these in C (correctly rounded, as Python's float does);
# anything else (+1, inf, nan, 1_000, 1e999, ...) is left to pandas, so what is accepted and
# what each accepted text means do not change.
PLAIN_NUMBER = r"^-?[0-9]{1,300}(?:\.[0-9]{1,300})?(?:[eE][+-]?[0-9]{1,2})?$"


def _arrow_text(text: pd.Series) -> pa.Array:
    values = text.array.__arrow_array__()
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _parse_numbers(text: pd.Series) -> np.ndarray:
    """Stripped text (blank: null) to float64, NaN where empty or not a number."""
    arrow = _arrow_text(text)
    plain = pc.match_substring_regex(arrow, PLAIN_NUMBER).fill_null(False)
    try:
        parsed = pc.cast(pc.if_else(plain, arrow, pa.scalar(None, pa.string())), pa.float64())
    except pa.ArrowInvalid:  # not expected for plain numbers; pandas decides them all then
        plain = pa.array(np.zeros(len(arrow), dtype=bool))
        parsed = pa.nulls(len(arrow), pa.float64())
    values = parsed.to_numpy(zero_copy_only=False).astype("float64", copy=True)
    present = ~np.asarray(arrow.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    other = np.flatnonzero(~np.asarray(plain.to_numpy(zero_copy_only=False), dtype=bool) & present)
    if len(other):
        rest = pd.Series(arrow.take(pa.array(other)).to_pylist(), dtype=object)
        values[other] = pd.to_numeric(rest, errors="coerce").astype("float64").to_numpy()
    return values


def _parse_iso(text: pd.Series) -> pd.Series:
    """ISO 8601 to UTC. Values with and without an offset are parsed apart: pandas, given both
    in one call, applies the first value's offset to the naive ones."""
    has_offset = pc.match_substring_regex(_arrow_text(text), OFFSET).fill_null(False)
    has_offset = np.asarray(has_offset.to_numpy(zero_copy_only=False), dtype=bool)
    text = text.astype(object)
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    for mask in (has_offset, ~has_offset):
        if mask.any():
            out[mask] = pd.to_datetime(text[mask], errors="coerce", format="ISO8601", utc=True)
    return out


def _ragged(df: pd.DataFrame, table: Table, version: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows a reader could not split into the right number of fields: rejected as
    `ragged_row`, their raw text kept (restricted) as the quarantine record."""
    if RAW_COLUMN not in df.columns:
        return np.zeros(len(df), dtype=bool), concat_quarantine([])
    mask = df[RAW_COLUMN].notna().to_numpy(dtype=bool)
    rows = df[mask]
    part = quarantine_rows(
        rows, table=table.name, rule="format", reason="ragged_row", column=None, version=version
    )
    part["record"] = pd.Series(
        [json.dumps({"text": t}) for t in rows[RAW_COLUMN]], dtype="string"
    )  # one per rejected row: the rare case, not a hot path
    return mask, part


def enforce_schema(df: pd.DataFrame, table: Table, version: str) -> TypingResult:
    """Coerce `df` (extracted records) to the table's declared types; quarantine what fails."""
    df = df.reset_index(drop=True)
    declared = [c.name for c in table.columns]
    missing = [c for c in declared if c not in df.columns]
    bookkeeping = (SOURCE_COLUMN, SHARD_COLUMN, RAW_COLUMN)
    extra = [c for c in df.columns if c not in declared and c not in bookkeeping]
    out: dict[str, pd.Series] = {}
    rejected, ragged = _ragged(df, table, version)
    parts: list[pd.DataFrame] = [ragged]
    counts: dict[str, int] = {"rejected_ragged_row": int(rejected.sum())} if rejected.any() else {}
    for column in table.columns:
        if column.name in df.columns:
            typed, bad = coerce_column(df[column.name], column)
        else:
            typed = pd.Series(pd.NA, index=df.index, dtype=arrow_dtype(column.dataType))
            bad = np.zeros(len(df), dtype=bool)
        new_bad = bad & ~rejected
        if new_bad.any():
            rows = df[new_bad]
            parts.append(
                quarantine_rows(
                    rows,
                    table=table.name,
                    rule="type",
                    reason=f"not_{column.dataType}",
                    column=column.name,
                    version=version,
                )
            )
            counts[f"rejected_type_{column.name}"] = int(new_bad.sum())
        rejected |= bad
        if not column.nullable and (column.empty is None or column.empty.strategy == "keep"):
            nulls = typed.isna().to_numpy(dtype=bool) & ~rejected
            if nulls.any():
                parts.append(
                    quarantine_rows(
                        df[nulls],
                        table=table.name,
                        rule="empty",
                        reason="null",
                        column=column.name,
                        version=version,
                    )
                )
                counts[f"rejected_null_{column.name}"] = int(nulls.sum())
                rejected |= nulls
        out[column.name] = typed
    if SOURCE_COLUMN in df.columns:
        out[SOURCE_COLUMN] = df[SOURCE_COLUMN].astype(pd.ArrowDtype(pa.string()))
    else:
        out[SOURCE_COLUMN] = pd.Series(pd.NA, index=df.index, dtype=pd.ArrowDtype(pa.string()))
    if SHARD_COLUMN in df.columns:
        out[SHARD_COLUMN] = df[SHARD_COLUMN].astype(pd.ArrowDtype(pa.string()))
    if not table.strict:
        for name in extra:
            out[name] = _as_text(df[name])
    typed_df = pd.DataFrame(out, index=df.index)[~rejected].reset_index(drop=True)
    counts["rows_in"] = len(df)
    counts["rejected_type"] = int(
        sum(v for k, v in counts.items() if k.startswith("rejected_type_"))
    ) + counts.get("rejected_ragged_row", 0)
    counts["rows_typed"] = len(typed_df)
    return TypingResult(
        data=typed_df,
        quarantine=concat_quarantine(parts),
        counts=counts,
        dropped_columns=extra if table.strict else [],
        missing_columns=missing,
    )
