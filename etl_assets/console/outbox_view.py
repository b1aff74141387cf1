"""What the outbox review shows of a prepared table: a page of rows, column statistics, and the
difference to the current published version by key. Only anonymized (published-zone) data."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

PAGE_ROWS = 25
SAMPLE_KEYS = 20


@dataclass(frozen=True)
class Page:
    rows: pd.DataFrame
    number: int
    pages: int
    total: int


def page_of(df: pd.DataFrame, number: int, size: int = PAGE_ROWS) -> Page:
    pages = max(1, math.ceil(len(df) / size))
    number = min(max(1, number), pages)
    start = (number - 1) * size
    return Page(df.iloc[start : start + size], number, pages, len(df))


@dataclass(frozen=True)
class ColumnStats:
    name: str
    type: str
    nulls: int
    distinct: int
    minimum: str = ""
    maximum: str = ""
    mean: str = ""


def _type(series: pd.Series) -> str:
    dtype = series.dtype
    return str(dtype.pyarrow_dtype) if isinstance(dtype, pd.ArrowDtype) else str(dtype)


def column_stats(df: pd.DataFrame) -> list[ColumnStats]:
    """Per column: type, nulls, distinct values; min, max (numbers, dates) and mean (numbers)."""
    out = []
    for name in df.columns:
        s = df[name]
        stats = {"nulls": int(s.isna().sum()), "distinct": int(s.nunique(dropna=True))}
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if (numeric or pd.api.types.is_datetime64_any_dtype(s)) and s.notna().any():
            low, high = s.min(), s.max()
            stats["minimum"], stats["maximum"] = (
                (f"{float(low):.6g}", f"{float(high):.6g}") if numeric else (str(low), str(high))
            )
            if numeric:
                stats["mean"] = f"{float(s.mean()):.4g}"
        out.append(ColumnStats(str(name), _type(s), **stats))
    return out


@dataclass(frozen=True)
class Diff:
    against: str | None  # the current published version, None when there is none
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    samples: dict[str, list[str]] = field(default_factory=dict)  # kind -> some keys
    note: str = ""


def key_text(df: pd.DataFrame, key: list[str]) -> pd.Series:
    """Each row's key as text ("a | b" for a compound key), column by column (vectorized)."""
    parts = [df[k].astype("string").fillna("∅") for k in key]
    out = parts[0]
    for part in parts[1:]:
        out = out + " | " + part
    return out


def _row_hashes(df: pd.DataFrame, columns: list[str]) -> pd.Series:
    if not columns:
        return pd.Series(0, index=df.index, dtype="uint64")
    return pd.util.hash_pandas_object(df[columns].astype("string"), index=False)


def diff(new: pd.DataFrame, old: pd.DataFrame | None, key: list[str], against: str | None) -> Diff:
    """Rows added, removed and changed between `old` (the current version) and `new`, matched by
    `key`; without a key, whole rows are compared (a changed row counts as removed + added)."""
    if old is None or against is None:
        return Diff(None, added=len(new), note="no published version to compare with")
    shared = [c for c in new.columns if c in old.columns]
    key = [k for k in key if k in shared]
    if not key:
        n, o = _row_hashes(new, shared), _row_hashes(old, shared)
        added = int((~n.isin(o)).sum())
        removed = int((~o.isin(n)).sum())
        note = "no primary key: rows compared as a whole"
        return Diff(against, added, removed, 0, len(new) - added, note=note)
    rest = [c for c in shared if c not in key]
    left = pd.DataFrame(
        {"k": key_text(new, key).to_numpy(), "h": _row_hashes(new, rest).to_numpy()}
    )
    right = pd.DataFrame(
        {"k": key_text(old, key).to_numpy(), "h": _row_hashes(old, rest).to_numpy()}
    )
    merged = left.merge(right, on="k", how="outer", suffixes=("_new", "_old"), indicator=True)
    added = merged[merged["_merge"] == "left_only"]["k"]
    removed = merged[merged["_merge"] == "right_only"]["k"]
    both = merged[merged["_merge"] == "both"]
    changed = both[both["h_new"] != both["h_old"]]["k"]
    samples = {
        "added": added.head(SAMPLE_KEYS).tolist(),
        "removed": removed.head(SAMPLE_KEYS).tolist(),
        "changed": changed.head(SAMPLE_KEYS).tolist(),
    }
    return Diff(against, len(added), len(removed), len(changed), len(both) - len(changed), samples)
