"""A parent's key values, built once and probed batch by batch (orphan removal).

Arrow's `is_in` builds a hash set of its whole value set on every call: probing 77 batches of a
10M-row child against a million parent keys rebuilt that set 77 times and was most of the
batched anonymize stage's time. A `KeySet` hashes the keys once (64-bit, sorted); each probe is a
binary search per value and an exact comparison of the texts it found, so a batch costs
O(batch x log keys) and the answer is exactly `is_in`'s. Keys of one byte width (pseudonyms) are
hashed from their bytes in place; keys of several widths with pandas' hash, which costs more than
`is_in` when there are no more keys than the batch has values: then `is_in` is the probe.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def search_sorted(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """`np.searchsorted(haystack, needles)`, searching the needles in their sorted order: a
    million-entry haystack does not fit in the cache, and sorted probes reuse the lines they
    load (about twice as fast for a batch)."""
    order = np.argsort(needles, kind="stable")
    pos = np.empty(len(needles), dtype=np.int64)
    pos[order] = np.searchsorted(haystack, needles[order])
    return pos


def _hashes(values: pa.Array) -> np.ndarray:
    """A 64-bit hash of each text (nulls hash too; they never compare equal below)."""
    return pd.util.hash_array(values.to_numpy(zero_copy_only=False), categorize=False)


def _width(values: pa.Array) -> int | None:
    """The byte length every text of `values` has, if they all have one (pseudonyms do)."""
    lengths = pc.binary_length(values)
    low, high = pc.min_max(lengths).values()
    return low.as_py() if low.is_valid and low.as_py() == high.as_py() else None


def _fixed_hashes(values: pa.Array, width: int) -> np.ndarray:
    """A 64-bit hash of each text of `width` bytes, mixed from its bytes in place: no Python
    string per value (about ten times faster than `_hashes` for a batch of pseudonyms)."""
    fixed = pc.cast(values, pa.binary(width))
    raw = np.frombuffer(fixed.buffers()[1], dtype=np.uint8, count=len(fixed) * width,
                        offset=fixed.offset * width).reshape(len(fixed), width)  # fmt: skip
    words = np.zeros((len(fixed), -(-width // 8) * 8), dtype=np.uint8)
    words[:, :width] = raw
    h = np.full(len(fixed), width, dtype=np.uint64)
    for word in words.view(np.uint64).T:
        h = (h ^ word) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    return h


class KeySet:
    """The distinct non-null texts of a key column, for exact membership tests."""

    def __init__(self, keys: pa.Array | pa.ChunkedArray):
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        self._keys = pc.unique(keys.drop_null())
        self._width = _width(self._keys) if len(self._keys) else None
        hashes = self._hash(self._keys)
        self._order = np.argsort(hashes, kind="stable")
        self._sorted = hashes[self._order]

    def __len__(self) -> int:
        return len(self._keys)

    def _hash(self, values: pa.Array) -> np.ndarray:
        """Keys of one width are hashed from their bytes, any other text the general way."""
        if self._width is None:
            return _hashes(values)
        return _fixed_hashes(values, self._width)

    def contains(self, values: pa.Array) -> np.ndarray:
        """Whether each of `values` is one of the keys (null: False), as a boolean array."""
        if not len(self._keys) or not len(values):
            return np.zeros(len(values), dtype=bool)
        if self._width is None and len(self._keys) <= len(values):
            return _is_in(values, self._keys)  # a set of a few keys costs less than pandas' hash
        if self._width is not None:  # a text of another width is none of the keys
            same_width = pc.equal(pc.binary_length(values), self._width).fill_null(False)
            if not pc.all(same_width).as_py():
                found = np.zeros(len(values), dtype=bool)
                rows = np.flatnonzero(same_width.to_numpy(zero_copy_only=False))
                found[rows] = self.contains(values.take(pa.array(rows)))
                return found
        hashes = self._hash(values)
        pos = np.minimum(search_sorted(self._sorted, hashes), len(self._sorted) - 1)
        found = self._sorted[pos] == hashes
        candidates = np.flatnonzero(found)
        same = pc.equal(
            self._keys.take(pa.array(self._order[pos[candidates]])),
            values.take(pa.array(candidates)),
        )
        same = np.asarray(same.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
        collided = candidates[~same]
        found[collided] = False
        if len(collided):  # a hash shared by another text: ask the exact (slow) way
            found[collided] = _is_in(values.take(pa.array(collided)), self._keys)
        return found


def _is_in(values: pa.Array, keys: pa.Array) -> np.ndarray:
    found = pc.is_in(values, value_set=keys).to_numpy(zero_copy_only=False)
    return np.asarray(found, dtype=bool)
