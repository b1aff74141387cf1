"""A parent's key values, built once and probed batch by batch (orphan removal).

Arrow's `is_in` builds a hash set of its whole value set on every call: probing 77 batches of a
10M-row child against a million parent keys rebuilt that set 77 times and was most of the
batched anonymize stage's time. A `KeySet` hashes the keys once (64-bit, sorted); each probe is a
binary search per value and an exact comparison of the texts it found, so a batch costs
O(batch x log keys) and the answer is exactly `is_in`'s. Against no more keys than the batch
has values, `is_in` itself is the cheaper probe, and is used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def _hashes(values: pa.Array) -> np.ndarray:
    """A 64-bit hash of each text (nulls hash too; they never compare equal below)."""
    return pd.util.hash_array(values.to_numpy(zero_copy_only=False), categorize=False)


class KeySet:
    """The distinct non-null texts of a key column, for exact membership tests."""

    def __init__(self, keys: pa.Array | pa.ChunkedArray):
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        self._keys = pc.unique(keys.drop_null())
        hashes = _hashes(self._keys)
        self._order = np.argsort(hashes, kind="stable")
        self._sorted = hashes[self._order]

    def __len__(self) -> int:
        return len(self._keys)

    def contains(self, values: pa.Array) -> np.ndarray:
        """Whether each of `values` is one of the keys (null: False), as a boolean array."""
        if not len(self._keys) or not len(values):
            return np.zeros(len(values), dtype=bool)
        if len(self._keys) <= len(values):  # a hash set of a few keys costs less than hashing
            return _is_in(values, self._keys)
        hashes = _hashes(values)
        pos = np.minimum(np.searchsorted(self._sorted, hashes), len(self._sorted) - 1)
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
