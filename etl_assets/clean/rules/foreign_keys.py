"""Foreign keys: a record whose value is missing from the referenced column of the parent's
cleaned data is rejected (rule `foreignKey`, reason `dangling_reference`).

A null foreign key references nothing and is kept (the column's empty rule decides about nulls).
Parents are cleaned first (`etl_assets.references.table_order`), so a parent record removed by
its own rules removes its children too, and removal cascades down chains A -> B -> C.
When a parent re-keyed records (onKeyConflict regenerate), children are not rewritten: they keep
pointing at the record that kept the key; `fk_rekeyed_parent_<column>` counts those children.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl_assets.clean.rules.working_set import WorkingSet, arrow_of, to_bool


def parent_values(
    parents: Mapping[str, pd.DataFrame], table: str, child: str, fk_table: str, fk_column: str
):
    if fk_table not in parents:
        raise KeyError(
            f"table {table!r}: column {child!r} references {fk_table}.{fk_column}, but no cleaned"
            f" data for {fk_table!r} was passed in parents (got {', '.join(parents) or 'none'})"
        )
    frame = parents[fk_table]
    if fk_column not in frame.columns:
        raise KeyError(f"table {table!r}: cleaned parent {fk_table!r} has no column {fk_column!r}")
    return arrow_of(frame[fk_column])


def member(values: pa.ChunkedArray, allowed: pa.ChunkedArray) -> np.ndarray:
    """Mask of `values` found in `allowed` (nulls: False). Integer keys in a dense range (the
    usual surrogate keys) go through a lookup table in numpy: O(n), no hash table of the
    parent's keys; anything else through Arrow's `is_in`."""
    t = values.type
    if (
        pa.types.is_integer(t)
        and allowed.type == t
        and len(allowed) > allowed.null_count
        and len(values) > values.null_count
    ):
        keys = allowed.drop_null().to_numpy()
        low, high = int(keys.min()), int(keys.max())
        if high - low <= 2 * len(keys) + 1024:
            table = np.zeros(high - low + 1, dtype=bool)
            table[keys - low] = True
            found = np.zeros(len(values), dtype=bool)
            start = 0
            for chunk in values.chunks:  # chunk by chunk: no full-size integer copies
                ints = chunk.fill_null(low).to_numpy()
                inside = (ints >= low) & (ints <= high)
                part = found[start : start + len(chunk)]
                part[inside] = table[ints[inside] - low]
                part &= ~to_bool(chunk.is_null())
                start += len(chunk)
            return found
    return to_bool(pc.is_in(values, value_set=allowed)) & ~to_bool(values.is_null())


def apply_foreign_keys(
    ws: WorkingSet,
    parents: Mapping[str, pd.DataFrame],
    parent_key_maps: Mapping[str, pd.DataFrame] | None,
) -> None:
    ws.count("rejected_foreign_key", 0)
    for column in ws.table.columns:
        fk = column.foreignKey
        if fk is None or column.name not in ws.columns:
            continue
        values = ws.column(column.name)
        allowed = parent_values(parents, ws.table.name, column.name, fk.table, fk.column)
        if allowed.type != values.type:
            allowed = allowed.cast(values.type)
        dangling = ~member(values, allowed) & ~to_bool(values.is_null())
        ws.reject(
            dangling,
            rule="foreignKey",
            reason="dangling_reference",
            column=column.name,
            count_keys=("rejected_foreign_key", f"rejected_foreign_key_{column.name}"),
        )
        key_map = (parent_key_maps or {}).get(fk.table)
        if key_map is not None and f"old_{fk.column}" in key_map.columns:
            old = arrow_of(key_map[f"old_{fk.column}"])
            if old.type != values.type:
                old = old.cast(values.type)
            hit = to_bool(pc.is_in(values, value_set=old)) & ws.alive
            ws.count(f"fk_rekeyed_parent_{column.name}", int(hit.sum()))
