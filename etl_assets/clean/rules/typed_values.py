"""Literals from the metadata (fill values, bounds, allowed sets) as Arrow scalars of the
column's type, so comparisons and replacements keep the column's dtype."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pyarrow as pa


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return dt.datetime.fromisoformat(str(value))


def python_value(value: Any, arrow_type: pa.DataType) -> Any:
    """`value` converted to the Python type Arrow expects for `arrow_type`."""
    if pa.types.is_timestamp(arrow_type):
        return _as_datetime(value)
    if pa.types.is_date(arrow_type):
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        return dt.date.fromisoformat(str(value)[:10])
    if pa.types.is_integer(arrow_type):
        return int(value)
    if pa.types.is_floating(arrow_type):
        return float(value)
    if pa.types.is_boolean(arrow_type):
        return bool(value)
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return str(value)
    return value


def scalar(value: Any, arrow_type: pa.DataType) -> pa.Scalar:
    return pa.scalar(python_value(value, arrow_type), type=arrow_type)


def bound(value: Any, arrow_type: pa.DataType, *, lower: bool) -> pa.Scalar:
    """A min/max bound; on an integer column a fractional bound is rounded inwards
    (min 0.5 -> 1), which selects exactly the same violations and clamps to a valid integer."""
    if pa.types.is_integer(arrow_type) and isinstance(value, float):
        value = math.ceil(value) if lower else math.floor(value)
    return scalar(value, arrow_type)


def array(values: list[Any], arrow_type: pa.DataType) -> pa.Array:
    return pa.array([python_value(v, arrow_type) for v in values], type=arrow_type)
