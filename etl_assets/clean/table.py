"""The clean stage of one table: merge its sources, enforce types, apply the field rules.

Sources are typed batch by batch (a staged source is never read whole): only the typed records,
far smaller than their text, are held for the rules that need the whole table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from etl_assets.clean.coerce import TypingResult, enforce_schema
from etl_assets.clean.rules.engine import apply_rules
from etl_assets.clean.rules.result import kept_batches
from etl_assets.metadata import DataModule, Table
from etl_assets.quarantine import (
    RAW_COLUMN,
    SHARD_COLUMN,
    SOURCE_COLUMN,
    concat_quarantine,
    quarantine_arrow,
)
from etl_assets.results import CleanCounts
from resources.staged import StagedTable

Source = pd.DataFrame | StagedTable


@dataclass
class CleanResult:
    records: pd.DataFrame
    """the typed records; those `alive` marks (all when None) are the cleaned ones"""
    quarantine: pd.DataFrame
    counts: CleanCounts
    key_map: pd.DataFrame | None
    dropped_columns: list[str]
    missing_columns: list[str]
    alive: np.ndarray | None = None

    @property
    def data(self) -> pd.DataFrame:
        """The cleaned records as one DataFrame (filtered once, on first use)."""
        if self.alive is not None:
            self.records = self.records[self.alive].reset_index(drop=True)
            self.alive = None
        return self.records

    @data.setter
    def data(self, df: pd.DataFrame) -> None:
        self.records, self.alive = df, None

    def batches(self, rows: int) -> Iterator[pa.Table]:
        """The cleaned records in batches of at most `rows` input records, no filtered copy."""
        return kept_batches(self.records, self.alive, rows)

    @property
    def rejected_rows(self) -> int:
        return len(self.quarantine)

    def quarantine_batches(self) -> Iterator[pa.RecordBatch]:
        """The quarantine rows as the streamed path hands them over (text columns)."""
        if len(self.quarantine):
            yield from quarantine_arrow(self.quarantine).to_batches()

    def discard(self) -> None:
        """Nothing to remove: the whole-table path keeps no scratch tables."""


def source_columns(source: Source) -> list[str]:
    return source.columns if isinstance(source, StagedTable) else [str(c) for c in source.columns]


def _frames(source: Source) -> Iterator[pd.DataFrame]:
    if isinstance(source, pd.DataFrame):
        yield source
        return
    if not source.num_rows:
        yield source.schema.empty_table().to_pandas(types_mapper=pd.ArrowDtype)
    for batch in source.iter_batches():
        yield batch.to_pandas(types_mapper=pd.ArrowDtype)


@dataclass(frozen=True)
class Layout:
    """The typed records' columns over all sources: declared, bookkeeping, undeclared ones."""

    declared: list[str]
    bookkeeping: list[str]
    extra: list[str]
    dropped: list[str]
    missing: list[str]

    @property
    def order(self) -> list[str]:
        return [*self.declared, *self.bookkeeping, *self.extra]


def source_layout(sources: list[Source], table: Table) -> Layout:
    """Which columns the typed records of `sources` have, from their schemas alone."""
    seen = list(dict.fromkeys(c for s in sources for c in source_columns(s)))
    declared = [c.name for c in table.columns]
    bookkeeping = [SOURCE_COLUMN] + ([SHARD_COLUMN] if SHARD_COLUMN in seen else [])
    undeclared = [c for c in seen if c not in declared and c not in (*bookkeeping, RAW_COLUMN)]
    return Layout(
        declared=declared,
        bookkeeping=bookkeeping,
        extra=[] if table.strict else undeclared,
        dropped=undeclared if table.strict else [],
        missing=[c for c in declared if c not in seen],
    )


def source_frames(sources: list[Source]) -> Iterator[pd.DataFrame]:
    """Every source's records, a batch at a time (a staged source is never read whole)."""
    for source in sources:
        yield from _frames(source)


def type_sources(sources: list[Source], table: Table, version: str) -> TypingResult:
    """`enforce_schema` over every source batch by batch, in collection order: the typed
    records (declared columns, source, shard, undeclared ones) and the type rejects."""
    sources = [s for s in sources if source_columns(s)]
    if not sources:
        return enforce_schema(pd.DataFrame(), table, version)
    layout = source_layout(sources, table)
    parts: list[pa.Table] = []
    quarantine: list[pd.DataFrame] = []
    counts: dict[str, int] = {}
    for frame in source_frames(sources):
        typed = enforce_schema(frame, table, version)
        parts.append(pa.Table.from_pandas(typed.data, preserve_index=False))
        quarantine.append(typed.quarantine)
        add_counts(counts, typed.counts)
        del frame, typed
    merged = pa.concat_tables(parts, promote_options="default")
    del parts
    merged = merged.select([c for c in layout.order if c in merged.schema.names])
    return TypingResult(
        data=merged.to_pandas(types_mapper=pd.ArrowDtype),
        quarantine=concat_quarantine(quarantine),
        counts=counts,
        dropped_columns=layout.dropped,
        missing_columns=layout.missing,
    )


def add_counts(total: dict[str, int], more: Mapping[str, int]) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0) + v


def clean_counts(typing: Mapping[str, int], rules: Mapping[str, int]) -> CleanCounts:
    """rows extracted = rows out + rejected (typing and rules) + duplicates merged."""
    details = {f"typing_{k}": v for k, v in typing.items() if k not in ("rows_in", "rows_typed")}
    details.update(
        {k: v for k, v in rules.items() if k not in ("rows_in", "rows_out", "duplicates")}
    )
    details["rejected_rules"] = details.pop("rejected", 0)
    details["rejected_type"] = typing["rows_in"] - typing["rows_typed"]
    return CleanCounts(
        rows_extracted=typing["rows_in"],
        rows_out=rules["rows_out"],
        rejected=details["rejected_type"] + details["rejected_rules"],
        duplicates=rules["duplicates"],
        details=details,
    )


def clean_table(
    frames: list[Source],
    table: Table,
    module: DataModule,
    *,
    version: str,
    parents: Mapping[str, pd.DataFrame],
    parent_key_maps: Mapping[str, pd.DataFrame] | None = None,
    filtered: bool = True,
) -> CleanResult:
    """rows extracted = rows out + rejected (typing and rules) + duplicates merged. With
    `filtered=False`, `data` keeps every typed record and `alive` marks the cleaned ones
    (`batches()` gives them without copying the table)."""
    typed = type_sources(frames, table, version)
    ruled = apply_rules(
        typed.data,
        table,
        module,
        version=version,
        parents=parents,
        parent_key_maps=parent_key_maps,
        filtered=filtered,
    )
    return CleanResult(
        records=ruled.data,
        quarantine=concat_quarantine([typed.quarantine, ruled.quarantine]),
        counts=clean_counts(typed.counts, ruled.counts),
        key_map=ruled.key_map,
        dropped_columns=typed.dropped_columns,
        missing_columns=typed.missing_columns,
        alive=ruled.alive,
    )
