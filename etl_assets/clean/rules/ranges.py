"""The range rule of each column: min/max for numbers, dates and datetimes, or an allowed set.

A violation is a non-null value below `min` (reason `below_min`), above `max` (`above_max`) or
not in `allowed` (`not_allowed`); null and NaN are never violations (that is the empty rule's job,
which runs first, so a fill value is range-checked too).
- `drop`: reject the record (rule `range`).
- `clamp`: set the value to the violated bound (numbers, dates, datetimes); on integer columns a
  fractional bound is rounded inwards. Counted in `clamped_<column>`.
- `replace` (allowed sets): set the value to `replacement`. The replacement itself is accepted even
  if it is not in `allowed`, so cleaning cleaned data changes nothing. Counted in `replaced_<column>`.
Each clamped or replaced cell is quarantined as `modified` with its original value.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl_assets.clean.rules import typed_values
from etl_assets.clean.rules.working_set import Reasons, WorkingSet, to_bool


def apply_range_rules(ws: WorkingSet) -> None:
    for column in ws.table.columns:
        rule = column.range
        if rule is None or column.name not in ws.data.columns:
            continue
        values = ws.arrow(column.name)
        t = values.type
        if rule.allowed is not None:
            allowed = rule.allowed + ([rule.replacement] if rule.onViolation == "replace" else [])
            ok = pc.is_in(values, value_set=typed_values.array(allowed, t))
            bad = ~to_bool(ok) & ~to_bool(values.is_null())
            reason = Reasons.pick((bad, "not_allowed"))
            hit = bad & ws.alive
            if rule.onViolation == "drop":
                _reject(ws, hit, reason, column.name)
            else:
                positions = np.flatnonzero(hit)
                ws.record_modified(
                    positions,
                    rule="range",
                    reason=reason,
                    column=column.name,
                    count_key=f"replaced_{column.name}",
                )
                if len(positions):
                    new = pc.if_else(
                        pa.array(hit), typed_values.scalar(rule.replacement, t), values
                    )
                    ws.set_column(column.name, new)
            continue

        low = high = None
        below = above = np.zeros(len(values), dtype=bool)
        if rule.min is not None:
            low = typed_values.bound(rule.min, t, lower=True)
            below = to_bool(pc.less(values, low))
        if rule.max is not None:
            high = typed_values.bound(rule.max, t, lower=False)
            above = to_bool(pc.greater(values, high))
        reason = Reasons.pick((below, "below_min"), (above, "above_max"))
        hit = (below | above) & ws.alive
        if rule.onViolation == "drop":
            _reject(ws, hit, reason, column.name)
            continue
        positions = np.flatnonzero(hit)
        ws.record_modified(
            positions,
            rule="range",
            reason=reason,
            column=column.name,
            count_key=f"clamped_{column.name}",
        )
        if len(positions):
            new = values
            if low is not None:
                new = pc.if_else(pa.array(below & ws.alive), low, new)
            if high is not None:
                new = pc.if_else(pa.array(above & ws.alive), high, new)
            ws.set_column(column.name, new)


def _reject(ws: WorkingSet, hit: np.ndarray, reason: Reasons, column: str) -> None:
    ws.reject(
        hit,
        rule="range",
        reason=reason,
        column=column,
        count_keys=("rejected_range", f"rejected_range_{column}"),
    )
