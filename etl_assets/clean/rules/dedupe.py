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
from etl_assets.clean.rules.working_set import WorkingSet, take


def dedupe_columns(ws: WorkingSet) -> list[str]:
    """The columns compared: declared columns, primary key first (it narrows candidates most)."""
    declared = [c.name for c in ws.table.columns if c.name in ws.data.columns]
    key = [c for c in ws.table.primaryKey or [] if c in declared]
    return key + [c for c in declared if c not in key]


def apply_dedupe(ws: WorkingSet) -> None:
    columns = dedupe_columns(ws)
    arrays = [ws.arrow(c) for c in columns]
    key = ws.table.primaryKey or []
    positions = np.flatnonzero(ws.alive)
    if key and columns[: len(key)] == key:
        # Narrowing on the key columns first also finds the primary-key candidates.
        positions = candidates(arrays[: len(key)], positions)
        ws.key_candidates = positions
        arrays = arrays[len(key) :]
    positions = candidates(arrays, positions)
    if len(positions) == 0:
        ws.count("duplicates", 0)
        return
    codes = group_codes([take(ws.arrow(c), positions) for c in columns])
    winners = best_first(codes, ws.source_rank(positions))
    mask = np.zeros(len(ws.alive), dtype=bool)
    mask[positions[~winners]] = True
    ws.reject(
        mask, rule="duplicate", reason="exact_duplicate", column=None, count_keys=("duplicates",)
    )
