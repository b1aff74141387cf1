"""The records of a table too large to hold, for the rules that need the whole table.

The streamed clean stage (`etl_assets.clean.streamed`) applies the record-local rules batch by
batch and writes every record, with its values after those rules, to a staged table. The rules
that compare records (dedupe, primary keys, foreign keys) then work on compact columns (keys,
references, sources) held in memory; what else they need comes from here: one column at a time,
or the few records at some positions in one pass over the staged table.

`originals` holds, for the records a record-local rule changed (fill, clamp, replace), the
record as typed, so the quarantine shows every record as received, as the whole-table path does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from resources.staged import StagedTable

POSITION = "__dm_position"


@dataclass
class StoredRows:
    staged: StagedTable
    originals: pa.Table | None = None
    """the typed records changed by a record-local rule, with their position in `POSITION`"""
    remembered: tuple[np.ndarray, pa.Table] | None = field(default=None, repr=False)
    """every column of the records at some sorted positions (`remember`): what later asks
    for some of them is answered without a pass over the staged table"""

    @property
    def columns(self) -> list[str]:
        return self.staged.columns

    def column(self, name: str) -> pa.ChunkedArray:
        """One column of every record, with its values after the record-local rules."""
        return self.staged.read([name]).column(name)

    def remember(self, positions: np.ndarray) -> None:
        """Fetch every column of the records at `positions` once and keep them: dedupe's last
        candidates, whose values it compares and whose records the quarantine then shows
        (one pass over the staged table instead of three)."""
        wanted = np.unique(np.asarray(positions, dtype=np.int64))
        self.remembered = None  # the fetch reads the staged table, not what was kept before
        self.remembered = (wanted, self.at(wanted))

    def at(self, positions: np.ndarray, columns: list[str] | None = None) -> pa.Table:
        """The records at `positions` (in that order), current values, in one pass (none when
        they are all remembered)."""
        columns = self.columns if columns is None else columns
        positions = np.asarray(positions, dtype=np.int64)
        if self.remembered is not None and len(self.remembered[0]):
            known, rows = self.remembered
            where = np.minimum(np.searchsorted(known, positions), len(known) - 1)
            if np.array_equal(known[where], positions):
                return rows.select(columns).take(pa.array(where))
        order = np.argsort(positions, kind="stable")
        wanted = positions[order]
        parts, start = [], 0
        schema = pa.schema([self.staged.schema.field(c) for c in columns])
        if len(wanted):
            for batch in self.staged.iter_batches(columns):
                end = start + batch.num_rows
                lo, hi = np.searchsorted(wanted, [start, end])
                if hi > lo:
                    parts.append(batch.take(pa.array(wanted[lo:hi] - start)))
                start = end
                if hi == len(wanted):
                    break
        found = pa.Table.from_batches(parts, schema=schema)
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return found.take(pa.array(back)) if len(back) else found

    def records(self, positions: np.ndarray) -> pd.DataFrame:
        """The records at `positions` as typed (before any rule changed them)."""
        current = self.at(positions)
        originals = self.originals
        if originals is None or not originals.num_rows or not len(positions):
            return current.to_pandas(types_mapper=pd.ArrowDtype)
        changed = originals.column(POSITION).to_numpy()
        where = np.searchsorted(changed, positions)
        where = np.minimum(where, len(changed) - 1)
        hit = changed[where] == positions
        if not hit.any():
            return current.to_pandas(types_mapper=pd.ArrowDtype)
        before = originals.select(current.column_names).take(pa.array(where[hit]))
        both = pa.concat_tables([current, before.cast(current.schema)])
        pick = np.arange(len(positions))
        pick[hit] = len(positions) + np.arange(int(hit.sum()))
        return both.take(pa.array(pick)).to_pandas(types_mapper=pd.ArrowDtype)
