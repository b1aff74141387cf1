"""Typed stage results: what a stage counts, as the asset records it, the blocking checks verify
it and the CLI reports it. Each is written to and read from materialization metadata by the same
class, so a renamed field breaks loudly (`StageResultMissing`) instead of reading as zero."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import dagster as dg

PREFIX = "dm/"


class StageResultMissing(LookupError):
    """A materialization does not carry the result a check or report needs."""


def _value(entry: Any) -> Any:
    return getattr(entry, "value", entry)


def _read(cls: type, md: Mapping[str, Any], what: str) -> dict[str, int]:
    names = [f.name for f in fields(cls) if f.name != "details"]
    missing = [n for n in names if PREFIX + n not in md]
    if missing:
        raise StageResultMissing(
            f"the {what} materialization has no {', '.join(PREFIX + n for n in missing)}"
        )
    return {n: int(_value(md[PREFIX + n])) for n in names}


@dataclass(frozen=True)
class CleanCounts:
    """The clean stage of one table: rows_extracted = rows_out + rejected + duplicates."""

    rows_extracted: int
    rows_out: int
    rejected: int
    duplicates: int
    details: dict[str, int] = field(default_factory=dict)
    """per rule and column: rejected_type_<col>, filled_<col>, clamped_<col>, rekeyed, ..."""

    STAGE: ClassVar[str] = "clean"

    @property
    def conserved(self) -> bool:
        return self.rows_extracted == self.rows_out + self.rejected + self.duplicates

    def to_metadata(self) -> dict[str, dg.MetadataValue]:
        main = {k: v for k, v in asdict(self).items() if k != "details"}
        return {
            PREFIX + k: dg.MetadataValue.int(int(v))
            for k, v in {**main, **dict(sorted(self.details.items()))}.items()
        }

    def log_text(self, table: str) -> str:
        """One line for the run's log: the totals, then every rule's count (never a value)."""
        rules = ", ".join(f"{k}={v}" for k, v in sorted(self.details.items()) if v)
        return (
            f"{table}: {self.rows_extracted} records extracted, {self.rows_out} kept,"
            f" {self.rejected} rejected, {self.duplicates} merged as duplicates"
            + (f"; per rule: {rules}" if rules else "; no rule rejected or changed a record")
        )

    @classmethod
    def from_metadata(cls, md: Mapping[str, Any]) -> CleanCounts:
        main = _read(cls, md, cls.STAGE)
        details = {
            k[len(PREFIX) :]: int(_value(v))
            for k, v in md.items()
            if k.startswith(PREFIX)
            and k[len(PREFIX) :] not in main
            and isinstance(_value(v), int)
            and not isinstance(_value(v), bool)
        }
        return cls(**main, details=details)


@dataclass(frozen=True)
class AnonymizeCounts:
    """The anonymize stage of one table: rows_in = published + suppressed + parent_suppressed."""

    rows_in: int
    published: int
    suppressed: int
    parent_suppressed: int

    STAGE: ClassVar[str] = "anonymize"

    @property
    def conserved(self) -> bool:
        return self.rows_in == self.published + self.suppressed + self.parent_suppressed

    def to_metadata(self) -> dict[str, dg.MetadataValue]:
        return {PREFIX + k: dg.MetadataValue.int(int(v)) for k, v in asdict(self).items()}

    def log_text(self, table: str, metrics: Mapping[str, float]) -> str:
        """One line for the run's log: the counts and what the transformation reached."""
        reached = ", ".join(f"{k}={v:g}" for k, v in sorted(metrics.items()))
        return (
            f"{table}: {self.rows_in} records in, {self.published} published,"
            f" {self.suppressed} suppressed, {self.parent_suppressed} removed with a suppressed"
            " parent" + (f"; reached: {reached}" if reached else "")
        )

    @classmethod
    def from_metadata(cls, md: Mapping[str, Any]) -> AnonymizeCounts:
        return cls(**_read(cls, md, cls.STAGE))


@dataclass(frozen=True)
class UploadCounts:
    """The upload of one table: the rows of the published version and how many were new."""

    published_rows: int
    inserted_rows: int

    STAGE: ClassVar[str] = "upload"

    def to_metadata(self) -> dict[str, dg.MetadataValue]:
        return {PREFIX + k: dg.MetadataValue.int(int(v)) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, md: Mapping[str, Any]) -> UploadCounts:
        return cls(**_read(cls, md, cls.STAGE))


@dataclass(frozen=True)
class ModelReached:
    """One declared privacy model of a table and the value the published data reaches (the
    smallest class size for k, distinct values for l, the largest distance for t)."""

    model: str
    """k-anonymity, l-diversity or t-closeness"""
    parameter: str
    """k, l or t"""
    required: float
    reached: float
    attribute: str | None = None
    """the sensitive column (l, t)"""

    @property
    def text(self) -> str:
        on = f" on {self.attribute}" if self.attribute else ""
        return f"{self.model}{on}: {self.parameter}={self.required:g} required, {self.reached:g} reached"


@dataclass(frozen=True)
class PrivacyReached:
    """What the outbox check verified on a prepared table: every declared model's value."""

    models: tuple[ModelReached, ...] = ()

    STAGE: ClassVar[str] = "outbox"
    KEY: ClassVar[str] = PREFIX + "privacy_reached"

    def to_metadata(self) -> dict[str, dg.MetadataValue]:
        return {self.KEY: dg.MetadataValue.json([asdict(m) for m in self.models])}

    @classmethod
    def from_metadata(cls, md: Mapping[str, Any]) -> PrivacyReached:
        if cls.KEY not in md:
            raise StageResultMissing(f"the {cls.STAGE} materialization has no {cls.KEY}")
        return cls(models=tuple(ModelReached(**m) for m in _value(md[cls.KEY])))


LEVEL_PREFIX = PREFIX + "level_"


def generalization_levels(md: Mapping[str, Any]) -> dict[str, int]:
    """The generalization level of each generalized column, as the anonymize stage recorded it
    (chosen by the privacy model search, or declared for columns that are no quasi-identifier)."""
    return {
        k[len(LEVEL_PREFIX) :]: int(_value(v)) for k, v in md.items() if k.startswith(LEVEL_PREFIX)
    }


@dataclass(frozen=True)
class TableOutcome:
    """What cleaning and anonymization did to one table of a version, as its stages recorded
    it: what the version's Croissant metadata tells consumers (counts, levels, never values)."""

    counts: AnonymizeCounts
    cleaned: CleanCounts | None = None
    levels: dict[str, int] = field(default_factory=dict)
    privacy: PrivacyReached = PrivacyReached()
    run_id: str | None = None
    """the run that anonymized the table"""
