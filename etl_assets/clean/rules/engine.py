"""The field rules engine: one table's typed records in, cleaned records, quarantine and counts out.

Pure and vectorized (pandas/pyarrow/numpy; no per-record Python loops). Rules apply in this order,
each only to the records still alive after the previous ones:

1. empty values, per column in declared order (`empty_values`): keep | fill | drop;
2. ranges, per column in declared order (`ranges`): drop | clamp | replace;
3. row-hash dedupe of exact duplicates over the declared columns, ignoring `_dm_source`
   (`dedupe`); after 1-2 so that cleaning cleaned data is a no-op (idempotence);
4. primary-key conflicts (`primary_keys`): null keys rejected, then sourcePriority | dropAll |
   regenerate; the winner is the best-ranked source (priority, then collection order), then the
   first record in extraction order;
5. foreign keys against the parents' cleaned data (`foreign_keys`); null references are kept.

A removed record is quarantined once, by the first rule that removed it (`action` rejected, the
original record as received); every filled, clamped, replaced or re-keyed cell adds one `modified`
row with the original value. Type rejects happen before this, in the typing stage.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import pyarrow as pa

from etl_assets.clean.rules.dedupe import apply_dedupe
from etl_assets.clean.rules.empty_values import apply_empty_rules
from etl_assets.clean.rules.foreign_keys import apply_foreign_keys
from etl_assets.clean.rules.primary_keys import apply_primary_key
from etl_assets.clean.rules.ranges import apply_range_rules
from etl_assets.clean.rules.result import RulesResult
from etl_assets.clean.rules.working_set import WorkingSet, series_of
from etl_assets.metadata import DataModule, Table

REJECT_COUNTS = ("rejected_empty", "rejected_range", "rejected_primary_key", "rejected_foreign_key")


def stable_counts(ws: WorkingSet) -> None:
    """Zero counts for every rule the table declares, so Dagster plots have no gaps."""
    for key in ("duplicates", *REJECT_COUNTS):
        ws.count(key, 0)
    for column in ws.table.columns:
        if column.empty and column.empty.strategy == "fill":
            ws.count(f"filled_{column.name}", 0)
        if column.range and column.range.onViolation == "clamp":
            ws.count(f"clamped_{column.name}", 0)
        if column.range and column.range.onViolation == "replace":
            ws.count(f"replaced_{column.name}", 0)
    if ws.table.onKeyConflict == "regenerate":
        ws.count("rekeyed", 0)


def _keep(ws: WorkingSet) -> pd.DataFrame:
    """The alive records, filtered column by column in Arrow (no pandas intermediate copies).
    Each column is released from `ws.data` once filtered, so a column the rules replaced (fill,
    clamp, replace, re-key) does not stay alive next to the filtered output."""
    if ws.alive.all():
        return ws.data
    mask = pa.array(ws.alive)
    index = pd.RangeIndex(int(ws.alive.sum()))
    columns = {}
    for c in list(ws.data.columns):
        columns[c] = series_of(ws.arrow(c).filter(mask), index)
        del ws.data[c]
    return pd.DataFrame(columns, copy=False)


def apply_record_rules(ws: WorkingSet) -> None:
    """The rules that look at one record at a time (1-2): a batch can take them alone."""
    apply_empty_rules(ws)
    apply_range_rules(ws)


def apply_table_rules(
    ws: WorkingSet,
    parents: Mapping[str, pd.DataFrame],
    parent_key_maps: Mapping[str, pd.DataFrame] | None,
) -> pd.DataFrame | None:
    """The rules that compare records (3-5); the key map of `regenerate`."""
    apply_dedupe(ws)
    key_map = apply_primary_key(ws)
    apply_foreign_keys(ws, parents, parent_key_maps)
    return key_map


def ordered_counts(counts: dict[str, int], rows_in: int, rows_out: int) -> dict[str, int]:
    """The rule counts with the totals first (rows_in = rows_out + rejected + duplicates)."""
    counts = {**counts, "rows_in": rows_in, "rows_out": rows_out}
    counts["rejected"] = sum(counts.get(k, 0) for k in REJECT_COUNTS)
    ordered = {
        k: counts.pop(k, 0)
        for k in ("rows_in", "rows_out", "rejected", "duplicates", *REJECT_COUNTS)
    }
    return {**ordered, **dict(sorted(counts.items()))}


def apply_rules(
    df: pd.DataFrame,
    table: Table,
    module: DataModule,
    *,
    version: str,
    parents: Mapping[str, pd.DataFrame],
    parent_key_maps: Mapping[str, pd.DataFrame] | None = None,
    filtered: bool = True,
) -> RulesResult:
    """Apply `table`'s field rules to its typed records `df` (declared columns + `_dm_source`).

    `parents` holds the cleaned data of every table referenced by a foreign key of `table`.
    With `filtered=False` the result's `data` keeps every record and `alive` marks the cleaned
    ones, so a caller that writes them batch by batch never holds a filtered copy."""
    ws = WorkingSet.start(df, table, module, version)
    stable_counts(ws)
    apply_record_rules(ws)
    key_map = apply_table_rules(ws, parents, parent_key_maps)

    quarantine = ws.quarantine()
    data = _keep(ws) if filtered else ws.data
    rows_out = len(data) if filtered else int(ws.alive.sum())
    return RulesResult(
        data=data,
        quarantine=quarantine,
        counts=ordered_counts(ws.counts, len(df), rows_out),
        key_map=key_map,
        alive=None if filtered else ws.alive,
    )
