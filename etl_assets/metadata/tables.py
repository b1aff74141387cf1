"""Tables: their columns, primary key and privacy requirements."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from etl_assets.metadata.anonymization import Privacy
from etl_assets.metadata.base import Name, _Model
from etl_assets.metadata.columns import Column


class Table(_Model):
    """A table of the module: its columns, key and privacy requirements."""

    name: Name
    description: str | None = None
    columns: list[Column] = Field(min_length=1)
    primaryKey: list[str] | None = Field(default=None, min_length=1)
    onKeyConflict: Literal["sourcePriority", "dropAll", "regenerate"] | None = Field(
        default=None, description="how records sharing a primary key are resolved"
    )
    privacy: Privacy | None = None
    privacyExemption: str | None = Field(
        default=None,
        min_length=10,
        description="why a table linked to a table with a privacy model needs none of its own"
        " (instead of `privacy`)",
    )
    strict: bool = Field(default=True, description="keep only declared columns")

    @field_validator("primaryKey", mode="before")
    @classmethod
    def _str_to_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _keys(self) -> Table:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"column names must be unique in a table: {', '.join(dupes)}")
        if self.primaryKey and self.onKeyConflict is None:
            raise ValueError(
                "a primaryKey needs onKeyConflict (sourcePriority | dropAll | regenerate)"
            )
        if self.privacy is not None and self.privacyExemption is not None:
            raise ValueError("a table has either privacy or privacyExemption, not both")
        return self

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def anatomized(self) -> str | None:
        """The column published in a separate sensitive table (anatomization), if any."""
        return next(
            (c.name for c in self.columns for op in c.anonymization if op.method == "anatomize"),
            None,
        )

    @property
    def published_names(self) -> list[str]:
        """The tables this table is published as: itself, or a QIT and an ST (anatomization)."""
        if self.anatomized is not None:
            return [f"{self.name}_qit", f"{self.name}_st"]
        return [self.name]
