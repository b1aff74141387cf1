"""Columns and their field rules: empty values, ranges and foreign keys."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from etl_assets.metadata.anonymization import ColumnAnonymization
from etl_assets.metadata.base import DataType, Name, _Model


def _show(bound: object) -> str:
    """A bound as the user wrote it: numbers bare, dates as quoted ISO text."""
    return repr(bound.isoformat()) if isinstance(bound, dt.date) else repr(bound)


def _comparable(bound: object) -> object:
    """A range bound as something orderable against the other bound of the same kind."""
    if isinstance(bound, dt.datetime):
        return bound.replace(tzinfo=None) if bound.tzinfo else bound
    if isinstance(bound, dt.date):
        return dt.datetime(bound.year, bound.month, bound.day)
    return float(bound)


class EmptyRule(_Model):
    """What to do with an empty value (null, NaN, or blank text) in this column."""

    strategy: Literal["keep", "fill", "drop"] = Field(
        description="keep: pass through; fill: replace with `value`; drop: reject the record"
    )
    value: Any = Field(default=None, description="the fill value, of the column's type")

    @model_validator(mode="after")
    def _fill_needs_value(self) -> EmptyRule:
        if self.strategy == "fill" and self.value is None:
            raise ValueError("strategy fill needs a value")
        if self.strategy != "fill" and self.value is not None:
            raise ValueError(f"a value is only used with strategy fill, not {self.strategy}")
        return self


class RangeRule(_Model):
    """Allowed values of a column and what happens to a record that violates them."""

    min: int | float | dt.date | dt.datetime | None = None
    max: int | float | dt.date | dt.datetime | None = None
    allowed: list[Any] | None = Field(default=None, description="the only allowed values")
    onViolation: Literal["drop", "clamp", "replace"] | None = Field(
        default=None,
        description="drop the record, clamp to the violated bound, or replace with `replacement`"
        " (allowed sets only)",
    )
    replacement: Any = None

    @model_validator(mode="after")
    def _consistent(self) -> RangeRule:
        if self.min is None and self.max is None and self.allowed is None:
            raise ValueError("a range needs min, max or allowed")
        if self.allowed is not None and (self.min is not None or self.max is not None):
            raise ValueError("a range has either min/max or allowed, not both")
        if self.onViolation is None:
            raise ValueError("a range needs onViolation (drop | clamp)")
        if self.allowed is not None and self.onViolation == "clamp":
            raise ValueError("an allowed set cannot be clamped: use onViolation drop or replace")
        if self.onViolation == "replace" and self.allowed is None:
            raise ValueError("onViolation replace is only for allowed sets; use drop or clamp")
        if self.onViolation == "replace" and self.replacement is None:
            raise ValueError("onViolation replace needs a replacement value")
        if self.min is not None and self.max is not None:
            low, high = _comparable(self.min), _comparable(self.max)
            if type(low) is not type(high):
                raise ValueError(
                    f"min {_show(self.min)} and max {_show(self.max)} must both be numbers or"
                    " both dates"
                )
            if low > high:
                raise ValueError(f"min {_show(self.min)} is greater than max {_show(self.max)}")
        return self


class ForeignKey(_Model):
    """The column's values must exist in `table`.`column` of the same module."""

    table: Name
    column: str


class Column(_Model):
    """A typed column; it belongs to exactly one table."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[^\x00-\x1f\x7f]+$")
    dataType: DataType
    description: str | None = None
    nullable: bool = True
    format: str | None = Field(
        default=None, description="strftime format to parse dates/datetimes from text"
    )
    empty: EmptyRule | None = None
    range: RangeRule | None = None
    foreignKey: ForeignKey | None = None
    anonymization: list[ColumnAnonymization] = Field(default_factory=list)

    @field_validator("anonymization", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    @field_validator("name")
    @classmethod
    def _no_reserved(cls, v: str) -> str:
        if v.startswith("_dm_"):
            raise ValueError("column names starting with _dm_ are reserved")
        return v

    @model_validator(mode="after")
    def _range_fits_type(self) -> Column:
        r = self.range
        if r is not None and (r.min is not None or r.max is not None):
            if self.dataType in ("string", "boolean"):
                raise ValueError(
                    f"min/max need a number, date or datetime column, not {self.dataType};"
                    " use allowed"
                )
        return self
