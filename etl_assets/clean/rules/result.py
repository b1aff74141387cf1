"""What the field rules return: the cleaned records, the quarantine and the counts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa


@dataclass
class RulesResult:
    data: pd.DataFrame
    """cleaned records: the input's columns and dtypes, a fresh RangeIndex"""
    quarantine: pd.DataFrame
    """rows of QUARANTINE_SCHEMA (columns of dtype string[pyarrow]): `rejected` per removed
    record, `modified` per changed cell"""
    counts: dict[str, int]
    """flat numeric metadata; rows_in == rows_out + rejected + duplicates"""
    key_map: pd.DataFrame | None
    """onKeyConflict regenerate: old_<key>, _dm_source, new_<key> per re-keyed record, else None"""
    alive: np.ndarray | None = None
    """with `apply_rules(filtered=False)`: `data` is every typed record and this marks the
    cleaned ones (the caller writes them batch by batch instead of copying the table)"""

    def batches(self, rows: int) -> Iterator[pa.Table]:
        return kept_batches(self.data, self.alive, rows)


def kept_batches(data: pd.DataFrame, alive: np.ndarray | None, rows: int) -> Iterator[pa.Table]:
    """The records of `data` that `alive` marks (all when None), as Arrow tables of at most
    `rows` input records each: a slice and a filter at a time, never a copy of the table."""
    for start in range(0, max(len(data), 1), rows):
        part = pa.Table.from_pandas(data.iloc[start : start + rows], preserve_index=False)
        if alive is not None:
            part = part.filter(pa.array(alive[start : start + rows]))
        yield part
