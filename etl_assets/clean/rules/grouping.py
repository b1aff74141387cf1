"""Finding records that share values (exact duplicates, primary-key conflicts), vectorized.

Full-width hashing of every column is the slow part at 10M rows, so candidates are narrowed
column by column first: two records can only be equal on several columns if each column alone
has a repeated value among the remaining candidates. Only the (usually small) candidate subset
is then grouped exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl_assets.clean.rules.working_set import series_of, take

_INT64_LIMIT = 2**62


def _as_int64(values: pa.ChunkedArray) -> np.ndarray | None:
    """Fixed-width values without nulls as int64 numpy (bit patterns for floats), else None."""
    t = values.type
    if values.null_count:
        return None
    if pa.types.is_integer(t):
        return np.asarray(values.to_numpy(), dtype=np.int64)
    if pa.types.is_floating(t):
        return np.ascontiguousarray(values.to_numpy(), dtype=np.float64).view(np.int64)
    if pa.types.is_date32(t):
        return np.asarray(values.cast(pa.int32()).to_numpy(), dtype=np.int64)
    if pa.types.is_timestamp(t) or pa.types.is_date64(t):
        return np.asarray(values.cast(pa.int64()).to_numpy(), dtype=np.int64)
    if pa.types.is_boolean(t):
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64)
    return None


def repeated(values: pa.ChunkedArray) -> np.ndarray:
    """Mask of the values that occur more than once (pandas `duplicated(keep=False)`)."""
    ints = _as_int64(values)
    if ints is None:
        return series_of(values, pd.RangeIndex(len(values))).duplicated(keep=False).to_numpy()
    return _repeated_ints(ints)


_CHUNK = 1 << 20  # records per step of the dense-range scan


def _repeated_dense(
    ints: np.ndarray, low: int, high: int, among: np.ndarray | None = None
) -> np.ndarray:
    """Mask of the records (of `among`, a mask, when given) whose value, in [low, high], another
    of them shares. One int32 stamp per value of the range (the last position that wrote it)
    and one flag, filled chunk by chunk: no sort, no count array, no full-size copy. Which of
    equal positions a scatter leaves in the stamp is unspecified; any one will do, since every
    other position of that value then sees a stamp not its own."""
    n = len(ints)
    index = np.int32 if n < 2**31 else np.int64
    stamp = np.full(high - low + 1, -1, dtype=index)
    shared = np.zeros(high - low + 1, dtype=bool)
    for start in range(0, n, _CHUNK):
        offsets = ints[start : start + _CHUNK] - low
        positions = np.arange(start, start + len(offsets), dtype=index)
        if among is not None:
            keep = among[start : start + len(offsets)]
            offsets, positions = offsets[keep], positions[keep]
        shared[offsets[stamp[offsets] >= 0]] = True  # seen in an earlier chunk
        stamp[offsets] = positions
        shared[offsets[stamp[offsets] != positions]] = True  # twice in this chunk
    del stamp
    out = np.empty(n, dtype=bool)
    for start in range(0, n, _CHUNK):
        out[start : start + _CHUNK] = shared[ints[start : start + _CHUNK] - low]
    return out if among is None else out & among


def _is_dense(low: int, high: int, n: int) -> bool:
    """Whether values in [low, high] are few enough per record to scan by value."""
    return high - low <= 2 * n + 1024


def _repeated_ints(ints: np.ndarray) -> np.ndarray:
    """`repeated` for int64 values."""
    if len(ints) == 0:
        return np.zeros(0, dtype=bool)
    low, high = int(ints.min()), int(ints.max())
    if _is_dense(low, high, len(ints)):
        # Dense range (surrogate keys, codes, dates): O(n), no sort.
        return _repeated_dense(ints, low, high)
    ordered = np.sort(ints)
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return np.zeros(len(ints), dtype=bool)
    dup_values = np.unique(ordered[1:][same])
    hit = pc.is_in(pa.array(ints), value_set=pa.array(dup_values))
    return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)


def _repeated_among(values: pa.ChunkedArray, among: np.ndarray) -> np.ndarray | None:
    """Mask of the records in `among` (a mask) whose value another one of them shares, for
    integer-like values in a dense range; None otherwise (no positions or gathered copy are
    made)."""
    ints = _as_int64(values)
    if ints is None or not len(ints):
        return None
    low, high = int(ints.min()), int(ints.max())
    if not _is_dense(low, high, len(ints)):
        return None
    return _repeated_dense(ints, low, high, among)


def candidates(columns: Sequence[pa.ChunkedArray], among: np.ndarray) -> np.ndarray:
    """Positions (within `among`, a mask or ascending positions) of records that may share all
    `columns` with another one of them."""
    positions = None if among.dtype == bool else among
    for values in columns:
        if positions is None:  # still a mask over every record
            same = _repeated_among(values, among)
            positions = np.flatnonzero(among if same is None else same)
            if same is not None:
                continue
        if len(positions) < 2:
            return positions[:0]
        ints = _as_int64(values) if 4 * len(positions) > len(values) else None
        if ints is not None and len(positions) == len(ints):  # every record: no gather
            same = _repeated_ints(ints)
        elif ints is not None:  # most records: gather in numpy, no Arrow copy of the column
            same = _repeated_ints(ints[positions])
        else:
            same = repeated(take(values, positions))
        del ints
        positions = positions[same]
    if positions is None:
        positions = np.flatnonzero(among)
    return positions


def group_codes(columns: Sequence[pa.ChunkedArray]) -> np.ndarray:
    """One int64 code per record, equal exactly when all `columns` are equal (nulls equal)."""
    n = len(columns[0]) if columns else 0
    codes = np.zeros(n, dtype=np.int64)
    cardinality = 1
    for values in columns:
        col_codes, uniques = pd.factorize(
            series_of(values, pd.RangeIndex(len(values))), use_na_sentinel=False
        )
        k = max(len(uniques), 1)
        if cardinality * k >= _INT64_LIMIT:
            codes, uniques_so_far = pd.factorize(codes)
            cardinality = max(len(uniques_so_far), 1)
        codes = codes * k + col_codes.astype(np.int64)
        cardinality *= k
    return codes


def best_first(codes: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Mask of the winner of each group of equal `codes`: lowest `rank`, then earliest position."""
    order = np.argsort(rank, kind="stable")
    later = pd.Series(codes[order]).duplicated(keep="first").to_numpy()
    winners = np.empty(len(codes), dtype=bool)
    winners[order] = ~later
    return winners
