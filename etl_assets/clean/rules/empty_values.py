"""The empty-value rule of each column: keep, fill with the declared value, or drop the record.

Empty means: null (pd.NA) in any column; additionally NaN in floating-point columns; and, in text
columns, the empty string or a string of only whitespace (Unicode whitespace, e.g. "  ", "\\t").
`keep` leaves empty values exactly as they are (blank strings stay blank, NaN stays NaN).
`fill` replaces every empty value with the typed fill value; each filled cell is quarantined as
`modified` (rule `empty`, reason `filled`, value = the original) and counted in `filled_<column>`.
`drop` rejects the record (rule `empty`, reason `null`, `nan` or `blank`).
Columns are processed in declared order; a record is rejected (and quarantined) only once.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl_assets.clean.rules.typed_values import scalar
from etl_assets.clean.rules.working_set import Reasons, WorkingSet, to_bool


def empty_kinds(values: pa.ChunkedArray) -> tuple[np.ndarray, Reasons]:
    """(is empty, reason code per record) for one column, following the module docstring."""
    is_null = to_bool(values.is_null())
    cases = [(is_null, "null")]
    t = values.type
    if pa.types.is_floating(t):
        cases.append((to_bool(pc.is_nan(values)), "nan"))
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        blank = pc.or_(pc.equal(pc.binary_length(values), 0), pc.utf8_is_space(values))
        cases.append((to_bool(blank), "blank"))
    empty = is_null
    for mask, _ in cases[1:]:
        empty = empty | mask
    return empty, Reasons.pick(*cases)


def apply_empty_rules(ws: WorkingSet) -> None:
    for column in ws.table.columns:
        rule = column.empty
        if rule is None or rule.strategy == "keep" or column.name not in ws.data.columns:
            continue
        values = ws.arrow(column.name)
        empty, reason = empty_kinds(values)
        hit = empty & ws.alive
        if rule.strategy == "drop":
            ws.reject(
                hit,
                rule="empty",
                reason=reason,
                column=column.name,
                count_keys=("rejected_empty", f"rejected_empty_{column.name}"),
            )
            continue
        positions = np.flatnonzero(hit)
        ws.record_modified(
            positions,
            rule="empty",
            reason="filled",
            column=column.name,
            count_key=f"filled_{column.name}",
        )
        if len(positions):
            fill = scalar(rule.value, values.type)
            ws.set_column(column.name, pc.if_else(pa.array(hit), fill, values))
