"""Typing and strict schema: coerce extracted records to the declared column types.

A value that cannot be coerced rejects its record (rule `type`); a null in a column declared
`nullable: false` whose `empty` rule does not fill or drop it rejects its record (rule `empty`,
reason `null`).
In a non-string column, blank text (empty after stripping) is null; a `string` column keeps its
text as given, blanks included (the `empty` rules decide about them, with reason `blank`), from
every reader alike. Datetimes with an offset are converted to UTC; datetimes without one are
taken as UTC; both are stored without a time zone. In strict mode only declared columns (and
`_dm_source`, `_dm_shard`) are kept; otherwise undeclared columns pass through as text.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache

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

PARALLEL_ROWS = 10_000  # below this, a batch's columns are typed one after the other

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


def _as_text(s: pd.Series) -> pd.Series:
    """Values as Arrow strings, stripped, with blanks as null.

    Through Arrow compute, not the `.str` accessor: a Series caches its accessor, which refers
    back to it, so every `.str` call leaves a reference cycle that only a full collection frees
    (batch after batch of typed columns piled up until one ran)."""
    stripped = pc.utf8_trim_whitespace(_text_array(s))
    blank = pc.equal(stripped, "")
    return _series(pc.if_else(blank, pa.scalar(None, pa.string()), stripped), s)


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
    if _is_text(s):
        return _coerce_text(s, column)
    if isinstance(s.dtype, pd.ArrowDtype) and s.dtype.pyarrow_dtype == target.pyarrow_dtype:
        return s, np.zeros(len(s), dtype=bool)
    if kind == "string":
        return s.astype("string").astype(target), np.zeros(len(s), bool)
    if kind in ("integer", "number"):
        if pd.api.types.is_bool_dtype(s.dtype):
            return _coerce_text(s, column)
        values = pd.to_numeric(s, errors="coerce").astype("float64")
        values = values.to_numpy(dtype="float64", na_value=np.nan)
        arr, bad = _from_floats(values, s.isna().to_numpy(dtype=bool), kind)
        return _series(arr, s), bad
    if kind == "boolean":
        if pd.api.types.is_bool_dtype(s.dtype):
            return s.astype(target), np.zeros(len(s), bool)
        return _coerce_text(s, column)
    # date / datetime
    if pd.api.types.is_datetime64_any_dtype(s.dtype) or (
        isinstance(s.dtype, pd.ArrowDtype)
        and (
            pa.types.is_timestamp(s.dtype.pyarrow_dtype) or pa.types.is_date(s.dtype.pyarrow_dtype)
        )
    ):
        parsed = pd.to_datetime(s, errors="coerce", utc=True)
        arr, bad = _from_datetimes(parsed, s.isna().to_numpy(dtype=bool), kind)
        return _series(arr, s), bad
    return _coerce_text(s, column)


def _coerce_text(s: pd.Series, column: Column) -> tuple[pd.Series, np.ndarray]:
    """Text to the declared type: a `string` column as given; in the others blank text (empty
    after stripping) is null.

    Arrow's own casts decide a column when they can decide it the way the general parsers
    below would (`_fast_parse`); every other value goes to those parsers, so what is accepted,
    and what an accepted text means, does not depend on which path took it."""
    raw = _arrow_text(s)
    kind = column.dataType
    if kind == "string":
        return _series(raw, s), np.zeros(len(s), bool)
    blank = pc.or_(pc.equal(raw, ""), pc.utf8_is_space(raw))
    text = pc.if_else(blank, pa.scalar(None, pa.string()), raw) if pc.any(blank).as_py() else raw
    empty = np.asarray(text.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    fast = None if column.format else _fast_parse(text, kind, empty)
    if fast is not None:
        arr, bad = fast
    else:
        arr, bad = _parse_text(pc.utf8_trim_whitespace(text), column, empty)
    return _series(arr, s), bad


def _fast_parse(text: pa.Array, kind: str, empty: np.ndarray) -> tuple[pa.Array, np.ndarray] | None:
    """(typed array, bad mask) through Arrow's casts, or None where they cannot decide alike.

    - integer: values of up to 15 ASCII digits are cast (below 2**53, so exactly what the
      number parser gives); the rest of the column, signs included, goes to that parser.
    - number: the cast decides a column only if it parses every value to a finite number: it
      reads inf for 1e999, which the general parser rejects.
    - date, datetime: the cast decides a column only if it parses every value and all of them
      fall in the range the general parser can represent (1678 to 2261)."""
    if kind == "integer":
        digits = pc.and_(pc.ascii_is_decimal(text), pc.less_equal(pc.binary_length(text), 15))
        digits = np.asarray(digits.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
        ints = pc.cast(pc.if_else(pa.array(digits), text, pa.scalar(None, pa.string())), pa.int64())
        rest = np.flatnonzero(~digits & ~empty)
        if not len(rest):
            return ints, np.zeros(len(text), bool)
        subset = pc.utf8_trim_whitespace(text.take(pa.array(rest)))
        sub, sub_bad = _from_floats(_parse_numbers(subset), np.zeros(len(rest), bool), kind)
        values = ints.fill_null(0).to_numpy(zero_copy_only=False).copy()
        valid = digits.copy()
        values[rest] = sub.fill_null(0).to_numpy(zero_copy_only=False)
        valid[rest] = ~sub_bad
        bad = np.zeros(len(text), bool)
        bad[rest] = sub_bad
        return pa.array(values, mask=~valid), bad
    if kind not in ("number", "date", "datetime"):
        return None
    try:
        typed = pc.cast(text, ARROW_TYPES[kind])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if kind == "number":
        if pc.all(pc.is_finite(typed)).as_py() is False:
            return None
    else:
        lo, hi = pc.min_max(typed).values()
        bounds = (dt.datetime(1678, 1, 1), dt.datetime(2261, 12, 31))
        if lo.is_valid and not (_naive(lo) >= bounds[0] and _naive(hi) <= bounds[1]):
            return None
    return typed, np.zeros(len(text), bool)


def _naive(value: pa.Scalar) -> dt.datetime:
    v = value.as_py()
    return v if isinstance(v, dt.datetime) else dt.datetime(v.year, v.month, v.day)


def _parse_text(text: pa.Array, column: Column, empty: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """The general parsers, on stripped text (blank: null)."""
    kind = column.dataType
    if kind in ("integer", "number"):
        return _from_floats(_parse_numbers(text), empty, kind)
    if kind == "boolean":
        lowered = pc.utf8_lower(text)
        is_true = np.asarray(
            pc.is_in(lowered, pa.array(sorted(TRUE_TEXT))).to_numpy(zero_copy_only=False), bool
        )
        is_false = np.asarray(
            pc.is_in(lowered, pa.array(sorted(FALSE_TEXT))).to_numpy(zero_copy_only=False), bool
        )
        bad = ~(is_true | is_false) & ~empty
        return pa.array(np.where(is_true, True, False), mask=~(is_true | is_false)), bad
    index = pd.RangeIndex(len(text))
    values = pd.Series(text.to_numpy(zero_copy_only=False), index=index, dtype=object)
    if column.format:
        parsed = pd.to_datetime(values, errors="coerce", format=column.format, utc=True)
    else:
        parsed = _parse_iso(values, text)
    return _from_datetimes(parsed, empty, kind)


def _from_floats(values: np.ndarray, empty: np.ndarray, kind: str) -> tuple[pa.Array, np.ndarray]:
    """float64 values (NaN: missing or not a number) as the declared numeric type."""
    bad = np.isnan(values) & ~empty
    if kind == "integer":
        fractional = ~np.isnan(values) & (np.floor(values) != values)
        too_big = ~np.isnan(values) & (np.abs(values) > 2**53)
        bad |= fractional | too_big
        values = np.where(bad, np.nan, values)
        return pa.array(values, from_pandas=True).cast(pa.int64(), safe=False), bad
    return pa.array(np.where(bad, np.nan, values), from_pandas=True), bad


def _from_datetimes(parsed: pd.Series, empty: np.ndarray, kind: str) -> tuple[pa.Array, np.ndarray]:
    """UTC datetimes (NaT: missing or not parsed) as naive UTC dates or datetimes; on the
    array, not the `.dt` accessor (see `_as_text`)."""
    naive = pd.DatetimeIndex(parsed).tz_localize(None)
    bad = naive.isna() & ~empty
    if kind == "date":
        arr = pa.array(naive.normalize().astype("datetime64[us]"), from_pandas=True)
        return arr.cast(pa.date32()), bad
    return pa.array(naive.astype("datetime64[us]"), from_pandas=True), bad


OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


# A plain decimal number: Arrow parses these in C (correctly rounded, as Python's float does);
# anything else (+1, inf, nan, 1_000, 1e999, ...) is left to pandas, so what is accepted and
# what each accepted text means do not change.
PLAIN_NUMBER = r"^-?[0-9]{1,300}(?:\.[0-9]{1,300})?(?:[eE][+-]?[0-9]{1,2})?$"


def _arrow_text(text: pd.Series) -> pa.Array:
    return _combined(_text_array(text))


def _combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _parse_numbers(arrow: pa.Array) -> np.ndarray:
    """Stripped text (blank: null) to float64, NaN where empty or not a number."""
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


def _parse_iso(text: pd.Series, arrow: pa.Array) -> pd.Series:
    """ISO 8601 to UTC. Values with and without an offset are parsed apart: pandas, given both
    in one call, applies the first value's offset to the naive ones."""
    has_offset = pc.match_substring_regex(arrow, OFFSET).fill_null(False)
    has_offset = np.asarray(has_offset.to_numpy(zero_copy_only=False), dtype=bool)
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


def _keep(columns: dict[str, pd.Series], keep: np.ndarray) -> pd.DataFrame:
    """The rows of `keep`, filtered column by column in Arrow (pandas' boolean indexing
    takes by position, several times slower)."""
    if keep.all():
        return pd.DataFrame(columns).reset_index(drop=True)
    mask = pa.array(keep)
    index = pd.RangeIndex(int(keep.sum()))
    out = {}
    for name, s in columns.items():
        if isinstance(s.dtype, pd.ArrowDtype):
            values = pd.arrays.ArrowExtensionArray(
                pc.filter(_combined(s.array.__arrow_array__()), mask)
            )
            out[name] = pd.Series(values, index=index, copy=False)
        else:
            out[name] = s[keep].reset_index(drop=True)
    return pd.DataFrame(out, index=index)


TYPING_THREADS = min(4, os.cpu_count() or 1)


@cache
def _typing_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(TYPING_THREADS, thread_name_prefix="dm-typing")


def _type_columns(
    df: pd.DataFrame, columns: list[Column]
) -> dict[str, tuple[pd.Series, np.ndarray]]:
    """`coerce_column` of each of `columns` that `df` has: on the typing threads when the
    batch is large enough (an error is raised for the first failing column in order). The
    Series are taken here: a DataFrame's item cache is not for several threads."""
    present = [(c, df[c.name]) for c in columns if c.name in df.columns]
    parallel = len(present) >= 2 and len(df) >= PARALLEL_ROWS
    run = _typing_pool().map if parallel else map
    typed = run(lambda pair: coerce_column(pair[1], pair[0]), present)
    return {c.name: result for (c, _), result in zip(present, typed, strict=True)}


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
    # the columns are typed side by side (Arrow's casts let go of the GIL); what each one
    # rejects is then taken in column order, as before
    typings = _type_columns(df, table.columns)
    for column in table.columns:
        if column.name in typings:
            typed, bad = typings.pop(column.name)
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
    typed_df = _keep(out, ~rejected)
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
