"""The table's records while the rules run: current values, which records are still alive,
and what has been quarantined and counted so far. Every rule module works on one of these."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl_assets.clean.rules.record_text import records_json
from etl_assets.clean.rules.stored_rows import StoredRows
from etl_assets.metadata import DataModule, Table
from etl_assets.quarantine import (
    QUARANTINE_COLUMNS,
    SOURCE_COLUMN,
    concat_quarantine,
)

QUARANTINE_DTYPE = pd.StringDtype("pyarrow")


def arrow_of(series: pd.Series) -> pa.ChunkedArray:
    """The Arrow data behind a pyarrow-backed pandas column (zero copy), or a conversion."""
    if isinstance(series.dtype, pd.ArrowDtype):
        return series.array.__arrow_array__()
    return pa.chunked_array([pa.array(series, from_pandas=True)])


def series_of(values: pa.ChunkedArray | pa.Array, index: pd.Index) -> pd.Series:
    if isinstance(values, pa.Array):
        values = pa.chunked_array([values])
    return pd.Series(pd.arrays.ArrowExtensionArray(values), index=index, copy=False)


def take(values: pa.ChunkedArray, positions: np.ndarray) -> pa.ChunkedArray:
    """`values[positions]`. Arrow's take on a many-chunk array (Parquet gives one chunk per 128k
    records) locates every index across all chunks, ~50x slower than this: ascending positions
    are split at the chunk boundaries and taken chunk by chunk; others go through their order."""
    positions = np.asarray(positions, dtype=np.int64)
    if values.num_chunks <= 1:
        return values.take(pa.array(positions))
    if len(positions) > 1 and not (positions[1:] >= positions[:-1]).all():
        order = np.argsort(positions, kind="stable")
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return take(values, positions[order]).combine_chunks().take(pa.array(back))
    bounds = np.cumsum([0] + [len(chunk) for chunk in values.chunks])
    cuts = np.searchsorted(positions, bounds)
    parts = [
        chunk.take(pa.array(positions[cuts[i] : cuts[i + 1]] - bounds[i]))
        for i, chunk in enumerate(values.chunks)
        if cuts[i + 1] > cuts[i]
    ]
    return pa.chunked_array(parts, type=values.type)


def take_series(series: pd.Series, positions: np.ndarray) -> pd.Series:
    """`series.iloc[positions]` with a fresh RangeIndex, through `take` for Arrow columns."""
    index = pd.RangeIndex(len(positions))
    if isinstance(series.dtype, pd.ArrowDtype):
        return series_of(take(arrow_of(series), positions), index).rename(series.name)
    return series.iloc[positions].reset_index(drop=True)


def to_bool(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow result as a numpy mask; null counts as False."""
    return np.asarray(values.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


@dataclass(frozen=True)
class Reasons:
    """A reason code per record, stored as small integers (10M records: 10 MB, not 300 MB of
    numpy text); `labels[codes[i]]` is the reason of record i."""

    labels: tuple[str, ...]
    codes: np.ndarray

    @classmethod
    def pick(cls, *cases: tuple[np.ndarray, str]) -> Reasons:
        """The label of the first matching mask per record (later cases do not override)."""
        codes = np.zeros(len(cases[0][0]), dtype=np.uint8)
        for i, (mask, _) in reversed(list(enumerate(cases))):
            codes[mask] = i + 1
        return cls(("",) + tuple(label for _, label in cases), codes)


def is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _index(labels: list, label: str | None) -> int:
    """Position of `label` in `labels`, appended if new."""
    if label not in labels:
        labels.append(label)
    return labels.index(label)


def _labelled(labels: list[str | None], codes: np.ndarray) -> pa.Array:
    """`labels[codes]` as Arrow text (None: null), without a Python string per row."""
    return pa.array(labels, pa.large_string()).take(pa.array(codes.astype(np.int32)))


def _text_series(values: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    """Arrow text as a QUARANTINE_DTYPE column without a round trip through Python strings."""
    if isinstance(values, pa.Array):
        values = pa.chunked_array([values])
    if values.type != pa.large_string():
        values = values.cast(pa.large_string())
    return pd.Series(pd.arrays.ArrowStringArray(values), index=index, copy=False)


@dataclass(frozen=True)
class _Entry:
    """Quarantine rows of one `reject` / `record_modified` call, kept small until `quarantine()`:
    record positions, the reason (one label, or `Reasons` codes at the positions) and the
    column's value at the time as text."""

    positions: np.ndarray
    action: str
    rule: str
    column: str | None
    reason: str | Reasons
    values: pa.ChunkedArray | None


@dataclass
class WorkingSet:
    """Mutable state of one `apply_rules` call. `data` is a shallow copy of the input: a rule that
    changes values replaces the whole column, so the caller's frame is never modified.

    Quarantine rows are collected as positions (`_Entry`) and built once, in `quarantine()`, from
    the (small) set of affected records; full-size intermediates are never materialized."""

    table: Table
    module: DataModule
    version: str
    original: pd.DataFrame
    data: pd.DataFrame
    alive: np.ndarray
    entries: list[_Entry] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    key_candidates: np.ndarray | None = None
    """positions that may share a primary key with another record (found by dedupe while it
    narrows on the key columns; a superset for the primary-key rule, which runs after it)"""
    stored: StoredRows | None = None
    """for a streamed table: every record, on disk; `data` then holds only compact columns"""
    changed: set[str] = field(default_factory=set)
    """the columns of `data` a rule replaced"""

    @classmethod
    def start(cls, df: pd.DataFrame, table: Table, module: DataModule, version: str) -> WorkingSet:
        original = df.reset_index(drop=True)
        return cls(
            table=table,
            module=module,
            version=version,
            original=original,
            data=original.copy(deep=False),
            alive=np.ones(len(original), dtype=bool),
        )

    def arrow(self, column: str) -> pa.ChunkedArray:
        return arrow_of(self.data[column])

    @property
    def columns(self) -> list[str]:
        """Every column of the records, also those only `stored` holds."""
        return self.stored.columns if self.stored is not None else [str(c) for c in self.data]

    def column(self, name: str) -> pa.ChunkedArray:
        """A whole column with its current values: from `data`, else read from `stored`."""
        if name in self.data.columns or self.stored is None:
            return self.arrow(name)
        return self.stored.column(name)

    def values_at(self, columns: list[str], positions: np.ndarray) -> list[pa.ChunkedArray]:
        """The current values of `columns` at `positions` (what `data` lacks: one pass)."""
        missing = [c for c in columns if c not in self.data.columns]
        fetched = self.stored.at(positions, missing) if missing and self.stored else None
        return [
            fetched.column(c)
            if fetched is not None and c in missing
            else take(self.arrow(c), positions)
            for c in columns
        ]

    def set_column(self, column: str, values: pa.ChunkedArray | pa.Array) -> None:
        dtype = self.data[column].dtype
        new = series_of(values, self.data.index)
        if new.dtype != dtype:
            new = new.astype(dtype)
        self.data[column] = new
        self.changed.add(column)

    def count(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + int(n)

    def reject(
        self,
        mask: np.ndarray,
        *,
        rule: str,
        reason: str | Reasons,
        column: str | None,
        count_keys: tuple[str, ...] = (),
    ) -> int:
        """Remove the alive records in `mask`; quarantine each once with the original record and
        the column's current value."""
        hit = mask & self.alive
        positions = np.flatnonzero(hit)
        del hit
        if len(positions) == 0:
            for key in count_keys:
                self.count(key, 0)
            return 0
        self.alive[positions] = False
        self._quarantine(positions, rule=rule, reason=reason, column=column, action="rejected")
        for key in count_keys:
            self.count(key, len(positions))
        return len(positions)

    def record_modified(
        self,
        positions: np.ndarray,
        *,
        rule: str,
        reason: str | Reasons,
        column: str,
        count_key: str,
    ) -> None:
        """Quarantine one `modified` row per changed cell; call before replacing the column.
        `Reasons` hold one code per record (all records, not just `positions`)."""
        self.count(count_key, len(positions))
        if len(positions):
            self._quarantine(positions, rule=rule, reason=reason, column=column, action="modified")

    def _quarantine(
        self,
        positions: np.ndarray,
        *,
        rule: str,
        reason: str | Reasons,
        column: str | None,
        action: str,
    ) -> None:
        positions = np.asarray(positions, dtype=np.int64)
        if isinstance(reason, Reasons):
            reason = Reasons(reason.labels, reason.codes[positions])
        values = None
        if column is not None:
            # Arrow's text form: NaN stays visible as "nan" (pandas would print <NA>).
            values = self.values_at([column], positions)[0].cast(pa.string())
        self.entries.append(_Entry(positions, action, rule, column, reason, values))

    def quarantine(self) -> pd.DataFrame:
        """All quarantine rows in the order they were recorded (QUARANTINE_COLUMNS, each of
        dtype QUARANTINE_DTYPE, a fresh RangeIndex); each affected record is encoded once."""
        entries = self.entries
        if not entries:
            return concat_quarantine([]).astype(QUARANTINE_DTYPE)
        positions = np.concatenate([e.positions for e in entries])
        n = len(positions)
        entry_of_row = np.repeat(np.arange(len(entries)), [len(e.positions) for e in entries])

        def per_entry(labels: list[str | None]) -> pa.Array:
            distinct = list(dict.fromkeys(labels))
            return _labelled(distinct, np.array([distinct.index(x) for x in labels])[entry_of_row])

        reason_labels: list[str | None] = []
        reason_codes = []
        for e in entries:
            if isinstance(e.reason, Reasons):
                lookup = np.array([_index(reason_labels, x) for x in e.reason.labels])
                reason_codes.append(lookup[e.reason.codes])
            else:
                reason_codes.append(np.full(len(e.positions), _index(reason_labels, e.reason)))
        reason = _labelled(reason_labels, np.concatenate(reason_codes))
        value = pa.chunked_array(
            [
                pa.nulls(len(e.positions), pa.string()) if e.values is None else e.values
                for e in entries
            ],
            type=pa.string(),
        )
        rows = pd.RangeIndex(n)
        sources = self.original.get(SOURCE_COLUMN)
        if sources is None:
            source = pd.Series(pd.NA, index=rows, dtype=QUARANTINE_DTYPE)
        elif isinstance(sources.dtype, pd.ArrowDtype) and is_text(sources.dtype.pyarrow_dtype):
            source = take(arrow_of(sources), positions)
        else:
            source = sources.take(positions).astype(QUARANTINE_DTYPE)
            source.index = rows
        if self.stored is not None:
            records = self.stored.records(positions)
        else:
            records = pd.DataFrame({c: take_series(v, positions) for c, v in self.original.items()})
        record = records_json(records).array.__arrow_array__()
        del records
        columns = {
            "table": _labelled([self.table.name], np.zeros(n, dtype=np.int32)),
            "source": source,
            "action": per_entry([e.action for e in entries]),
            "rule": per_entry([e.rule for e in entries]),
            "column": per_entry([e.column for e in entries]),
            "reason": reason,
            "value": value,
            "record": record,
            "version": _labelled([self.version], np.zeros(n, dtype=np.int32)),
        }
        out = {
            name: values if isinstance(values, pd.Series) else _text_series(values, rows)
            for name, values in columns.items()
        }
        return pd.DataFrame(out, index=rows, copy=False)[QUARANTINE_COLUMNS]

    def source_rank(self, positions: np.ndarray) -> np.ndarray:
        """Rank of each record's source, 0 = best: higher `priority` first, then the order of
        the collection entries; unknown or missing sources rank last."""
        entries = self.module.entries_for(self.table.name)
        ranked = [
            e.source for _, e in sorted(enumerate(entries), key=lambda ie: (-ie[1].priority, ie[0]))
        ]
        if SOURCE_COLUMN not in self.data.columns or not ranked:
            return np.zeros(len(positions), dtype=np.int64)

        sources = take(self.arrow(SOURCE_COLUMN), positions)
        if sources.type != pa.string():
            sources = sources.cast(pa.string())
        rank = pc.index_in(sources, value_set=pa.array(ranked, type=pa.string()))
        return np.asarray(rank.fill_null(len(ranked)).to_numpy(), dtype=np.int64)
