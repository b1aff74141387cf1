"""Primary-key conflicts: records of the merged table that share a (single or composite) key.

Records with a null in a key column are rejected first (rule `primaryKey`, reason `null_key`):
a key identifies a record, and null identifies nothing.
Winner of a conflict (sourcePriority and regenerate): the record from the source with the highest
`priority`; equal priorities are ordered by the collection entries' order in the metadata; within
one source, the first record in extraction order (input row order) wins.
- `sourcePriority`: every other record of the group is rejected (reason `lost_key_conflict`).
- `dropAll`: every record of the group is rejected (reason `key_conflict`).
- `regenerate`: every record is kept; the winner keeps its key and all others get a new one in one
  key column (the last integer or string column of the key, else the last number column):
  integers and numbers continue after the column's maximum over all input records (max+1, max+2,
  ... in extraction order); strings become `<old>~<n>` (n = 1, 2, ... per group, raised until the
  value exists nowhere in the column). Old -> new is returned as the key map (`old_<col>`,
  `_dm_source`, `new_<col>` for every key column) and each re-keyed cell is quarantined as
  `modified`. Foreign keys of child tables are not rewritten: a child value equal to the old key
  keeps pointing at the record that kept that key (the winner), the only unambiguous target.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl_assets.clean.rules.grouping import best_first, candidates, group_codes
from etl_assets.clean.rules.working_set import WorkingSet, take, take_series, to_bool
from etl_assets.quarantine import SOURCE_COLUMN


def apply_primary_key(ws: WorkingSet) -> pd.DataFrame | None:
    """Resolve key conflicts among the alive records; the key map for `regenerate`, else None."""
    key = ws.table.primaryKey
    strategy = ws.table.onKeyConflict
    ws.count("rejected_primary_key", 0)
    if not key:
        return None
    for column in key:
        ws.reject(
            to_bool(ws.arrow(column).is_null()),
            rule="primaryKey",
            reason="null_key",
            column=column,
            count_keys=("rejected_primary_key",),
        )
    arrays = [ws.arrow(c) for c in key]
    among = ws.alive
    if ws.key_candidates is not None:  # dedupe already narrowed on the key (alive only shrank)
        among = ws.key_candidates[ws.alive[ws.key_candidates]]
    positions = candidates(arrays, among)
    codes = group_codes([take(a, positions) for a in arrays]) if len(positions) else None
    if strategy == "dropAll":
        if codes is not None:
            dense, _ = pd.factorize(codes)
            conflict = np.bincount(dense)[dense] > 1
            mask = np.zeros(len(ws.alive), dtype=bool)
            mask[positions[conflict]] = True
            ws.reject(
                mask,
                rule="primaryKey",
                reason="key_conflict",
                column=key[0] if len(key) == 1 else None,
                count_keys=("rejected_primary_key",),
            )
        return None
    losers = positions[:0]
    if codes is not None:
        winners = best_first(codes, ws.source_rank(positions))
        losers = positions[~winners]
    if strategy == "sourcePriority":
        mask = np.zeros(len(ws.alive), dtype=bool)
        mask[losers] = True
        ws.reject(
            mask,
            rule="primaryKey",
            reason="lost_key_conflict",
            column=key[0] if len(key) == 1 else None,
            count_keys=("rejected_primary_key",),
        )
        return None
    loser_codes = codes[~winners] if codes is not None else np.zeros(0, dtype=np.int64)
    return _regenerate(ws, key, losers, loser_codes)


def regenerated_column(ws: WorkingSet, key: list[str]) -> str:
    types = {c: ws.arrow(c).type for c in key}
    for test in (
        lambda t: pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t),
        pa.types.is_floating,
    ):
        for column in reversed(key):
            if test(types[column]):
                return column
    raise ValueError(
        f"table {ws.table.name!r}: onKeyConflict regenerate needs an integer, number or string"
        f" column in primaryKey {key}, got {', '.join(f'{c}: {types[c]}' for c in key)}"
    )


def _new_keys(values: pa.ChunkedArray, old: pa.Array, codes: np.ndarray) -> pa.Array:
    t = values.type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        top = pc.max(values).as_py()
        start = 0 if top is None else top
        return pa.array(start + np.arange(1, len(old) + 1), type=t)
    n = pd.Series(codes).groupby(codes, sort=False).cumcount().to_numpy() + 1
    step = len(old)
    while True:
        new = pc.binary_join_element_wise(old, pa.array(n.astype(str)), "~")
        clash = to_bool(pc.is_in(new, value_set=values))
        if not clash.any():
            return new.cast(t)
        n = np.where(clash, n + step, n)


def _regenerate(
    ws: WorkingSet, key: list[str], losers: np.ndarray, codes: np.ndarray
) -> pd.DataFrame:
    column = regenerated_column(ws, key)
    values = ws.arrow(column)
    old_columns = {f"old_{c}": take_series(ws.data[c], losers) for c in key}
    source = (
        take_series(ws.data[SOURCE_COLUMN], losers)
        if SOURCE_COLUMN in ws.data.columns
        else pd.Series(pd.NA, index=range(len(losers)), dtype=pd.ArrowDtype(pa.string()))
    )
    ws.record_modified(
        losers, rule="primaryKey", reason="regenerated", column=column, count_key="rekeyed"
    )
    if len(losers):
        new = _new_keys(values, take(values, losers).combine_chunks(), codes)
        mask = np.zeros(len(ws.alive), dtype=bool)
        mask[losers] = True
        replaced = pc.replace_with_mask(values.combine_chunks(), pa.array(mask), new)
        ws.set_column(column, replaced)
    new_columns = {f"new_{c}": take_series(ws.data[c], losers) for c in key}
    return pd.DataFrame({**old_columns, SOURCE_COLUMN: source, **new_columns})
