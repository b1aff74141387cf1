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
import pyarrow as pa

from etl_assets.rules.grouping import best_first, candidates, group_codes
from etl_assets.rules.working_set import WorkingSet


def dedupe_columns(ws: WorkingSet) -> list[str]:
    """The columns compared: declared columns, primary key first (it narrows candidates most)."""
    declared = [c.name for c in ws.table.columns if c.name in ws.data.columns]
    key = [c for c in ws.table.primaryKey or [] if c in declared]
    return key + [c for c in declared if c not in key]


def apply_dedupe(ws: WorkingSet) -> None:
    arrays = [ws.arrow(c) for c in dedupe_columns(ws)]
    positions = candidates(arrays, ws.alive)
    if len(positions) == 0:
        ws.count("duplicates", 0)
        return
    take = pa.array(positions)
    codes = group_codes([a.take(take) for a in arrays])
    winners = best_first(codes, ws.source_rank(positions))
    mask = np.zeros(len(ws.alive), dtype=bool)
    mask[positions[~winners]] = True
    ws.reject(
        mask, rule="duplicate", reason="exact_duplicate", column=None, count_keys=("duplicates",)
    )
