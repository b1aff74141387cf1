"""What the field rules return: the cleaned records, the quarantine and the counts."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass
class RulesResult:
    data: pd.DataFrame
    """cleaned records: the input's columns and dtypes, a fresh RangeIndex"""
    quarantine: pd.DataFrame
    """rows of QUARANTINE_SCHEMA (columns of dtype string[pyarrow]): `rejected` per removed
    record, `modified` per changed cell"""
    counts: dict[str, int]
    """flat numeric metadata; rows_in == rows_out + rejected + duplicates"""
    key_map: pd.DataFrame | None
    """onKeyConflict regenerate: old_<key>, _dm_source, new_<key> per re-keyed record, else None"""
