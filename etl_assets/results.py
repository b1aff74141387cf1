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
