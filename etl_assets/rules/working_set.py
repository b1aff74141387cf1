"""The table's records while the rules run: current values, which records are still alive,
and what has been quarantined and counted so far. Every rule module works on one of these."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from etl_assets.model import DataModule, Table
from etl_assets.quarantine import SOURCE_COLUMN, quarantine_rows

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

    def at(self, positions: np.ndarray) -> np.ndarray:
        return np.asarray(self.labels, dtype=object)[self.codes[positions]]


@dataclass
class WorkingSet:
    """Mutable state of one `apply_rules` call. `data` is a shallow copy of the input: a rule that
    changes values replaces the whole column, so the caller's frame is never modified."""

    table: Table
    module: DataModule
    version: str
    original: pd.DataFrame
    data: pd.DataFrame
    alive: np.ndarray
    quarantine: list[pd.DataFrame] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

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

    def set_column(self, column: str, values: pa.ChunkedArray | pa.Array) -> None:
        dtype = self.data[column].dtype
        new = series_of(values, self.data.index)
        if new.dtype != dtype:
            new = new.astype(dtype)
        self.data[column] = new

    def count(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + int(n)

    def _rows(self, positions: np.ndarray) -> pd.DataFrame:
        return self.original.iloc[positions]

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
        if len(positions) == 0:
            for key in count_keys:
                self.count(key, 0)
            return 0
        self.alive[positions] = False
        if isinstance(reason, Reasons):
            reason = reason.at(positions)
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
        if isinstance(reason, Reasons):
            reason = reason.at(positions)
        if len(positions):
            self._quarantine(positions, rule=rule, reason=reason, column=column, action="modified")

    def _quarantine(
        self,
        positions: np.ndarray,
        *,
        rule: str,
        reason: str | np.ndarray,
        column: str | None,
        action: str,
    ) -> None:
        rows = self._rows(positions)
        values = None
        if column is not None:
            # Arrow's text form: NaN stays visible as "nan" (pandas would print <NA>).
            text = self.arrow(column).take(pa.array(positions)).cast(pa.string())
            values = series_of(text, rows.index)
        if isinstance(reason, np.ndarray):
            reason = pd.Series(reason, index=rows.index, dtype="string")
        part = quarantine_rows(
            rows,
            table=self.table.name,
            rule=rule,
            reason=reason,
            column=column,
            version=self.version,
            action=action,
            values=values,
        )
        # Arrow-backed text: ~5x smaller than Python str objects at 10^5-10^6 quarantined rows.
        self.quarantine.append(part.astype(QUARANTINE_DTYPE))

    def source_rank(self, positions: np.ndarray) -> np.ndarray:
        """Rank of each record's source, 0 = best: higher `priority` first, then the order of
        the collection entries; unknown or missing sources rank last."""
        entries = self.module.entries_for(self.table.name)
        ranked = [
            e.source for _, e in sorted(enumerate(entries), key=lambda ie: (-ie[1].priority, ie[0]))
        ]
        if SOURCE_COLUMN not in self.data.columns or not ranked:
            return np.zeros(len(positions), dtype=np.int64)
        import pyarrow.compute as pc

        sources = self.arrow(SOURCE_COLUMN).take(pa.array(positions))
        if sources.type != pa.string():
            sources = sources.cast(pa.string())
        rank = pc.index_in(sources, value_set=pa.array(ranked, type=pa.string()))
        return np.asarray(rank.fill_null(len(ranked)).to_numpy(), dtype=np.int64)
