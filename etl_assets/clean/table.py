"""The clean stage of one table: merge its sources, enforce types, apply the field rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from etl_assets.clean.coerce import enforce_schema
from etl_assets.clean.rules.engine import apply_rules
from etl_assets.metadata import DataModule, Table
from etl_assets.quarantine import concat_quarantine
from etl_assets.results import CleanCounts


@dataclass
class CleanResult:
    data: pd.DataFrame
    quarantine: pd.DataFrame
    counts: CleanCounts
    key_map: pd.DataFrame | None
    dropped_columns: list[str]
    missing_columns: list[str]


def merge_sources(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate the table's sources in collection order (columns unioned, source kept)."""
    frames = [f for f in frames if len(f.columns)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def clean_table(
    frames: list[pd.DataFrame],
    table: Table,
    module: DataModule,
    *,
    version: str,
    parents: Mapping[str, pd.DataFrame],
    parent_key_maps: Mapping[str, pd.DataFrame] | None = None,
) -> CleanResult:
    """rows extracted = rows out + rejected (typing and rules) + duplicates merged."""
    merged = merge_sources(frames)
    typed = enforce_schema(merged, table, version)
    ruled = apply_rules(
        typed.data,
        table,
        module,
        version=version,
        parents=parents,
        parent_key_maps=parent_key_maps,
    )
    details = {
        f"typing_{k}": v for k, v in typed.counts.items() if k not in ("rows_in", "rows_typed")
    }
    details.update(
        {k: v for k, v in ruled.counts.items() if k not in ("rows_in", "rows_out", "duplicates")}
    )
    details["rejected_rules"] = details.pop("rejected", 0)
    details["rejected_type"] = typed.counts["rows_in"] - typed.counts["rows_typed"]
    counts = CleanCounts(
        rows_extracted=typed.counts["rows_in"],
        rows_out=ruled.counts["rows_out"],
        rejected=details["rejected_type"] + details["rejected_rules"],
        duplicates=ruled.counts["duplicates"],
        details=details,
    )
    return CleanResult(
        data=ruled.data,
        quarantine=concat_quarantine([typed.quarantine, ruled.quarantine]),
        counts=counts,
        key_map=ruled.key_map,
        dropped_columns=typed.dropped_columns,
        missing_columns=typed.missing_columns,
    )
