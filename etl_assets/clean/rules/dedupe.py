"""Row-hash dedupe: records equal in every declared column are exact duplicates; one is kept.

`_dm_source` (and any other `_dm_*` bookkeeping column) is ignored, so the same record extracted
from two sources is one record. The kept copy is the one from the best-ranked source (highest
`priority`, then collection order), then the first in extraction order (input row order). The
others are quarantined (rule `duplicate`, reason `exact_duplicate`, action `rejected`) and counted
in `duplicates`, not in `rejected`. Dedupe runs after the empty and range rules, on the normalized
values, so that records which only differed in how a value was missing are merged, and cleaning
cleaned data finds nothing more to merge.
"""

from __future__ import annotations

import numpy as np

from etl_assets.clean.rules.grouping import best_first, candidates, group_codes
from etl_assets.clean.rules.working_set import WorkingSet

FETCH_SHARE = 0.05
"""a streamed table: once the candidates are this share of the records or fewer, their other
columns are fetched in one pass instead of reading each column whole"""


def dedupe_columns(ws: WorkingSet) -> list[str]:
    """The columns compared: declared columns, primary key first (it narrows candidates most)."""
    present = set(ws.columns)
    declared = [c.name for c in ws.table.columns if c.name in present]
    key = [c for c in ws.table.primaryKey or [] if c in declared]
    return key + [c for c in declared if c not in key]


def _narrow(ws: WorkingSet, columns: list[str], positions: np.ndarray) -> np.ndarray:
    """`candidates` over `columns`; a streamed table reads one column at a time until few
    candidates are left, then fetches the rest of their values at once."""
    if ws.stored is None:
        return candidates([ws.arrow(c) for c in columns], positions)
    if positions.dtype == bool:
        if not columns:
            return np.flatnonzero(positions)
        positions = candidates([ws.column(columns[0])], positions)
        columns = columns[1:]
    for i, column in enumerate(columns):
        if len(positions) < 2:
            return positions[:0]
        if len(positions) <= FETCH_SHARE * len(ws.alive):
            ws.stored.remember(positions)  # the rest of dedupe and its quarantine read these
            values = ws.values_at(columns[i:], positions)
            return positions[candidates(values, np.arange(len(positions)))]
        positions = candidates([ws.column(column)], positions)
    return positions


def apply_dedupe(ws: WorkingSet) -> None:
    columns = dedupe_columns(ws)
    key = ws.table.primaryKey or []
    positions = ws.alive  # a mask until the first column narrows it
    rest = columns
    if key and columns[: len(key)] == key:
        # Narrowing on the key columns first also finds the primary-key candidates.
        positions = candidates([ws.column(c) for c in key], ws.alive)
        ws.key_candidates = positions
        rest = columns[len(key) :]
    positions = _narrow(ws, rest, positions)
    if len(positions) == 0:
        ws.count("duplicates", 0)
        return
    codes = group_codes(ws.values_at(columns, positions))
    winners = best_first(codes, ws.source_rank(positions))
    mask = np.zeros(len(ws.alive), dtype=bool)
    mask[positions[~winners]] = True
    ws.reject(
        mask, rule="duplicate", reason="exact_duplicate", column=None, count_keys=("duplicates",)
    )
