"""How many distinct values a column has, batch by batch in bounded memory.

Exact while the distinct values seen fit `EXACT_LIMIT`; beyond that a HyperLogLog estimate
(2^14 registers, ~0.8% standard error) over a 64-bit hash of each value, computed in numpy from
the Arrow buffers (no Python object per value). Memory per column: the exact set up to the
limit, then 16 KB. For the asset profile, whose share of distinct values it fills; the hash is
not a privacy measure and never leaves the process.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EXACT_LIMIT = 65_536
P = 14  # register index bits
M = 1 << P
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # spreads the length over the seed
# the low n bytes of a word, for n = 0..8
_TAIL = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)
# a register's rank comes from 32 more bits of the hash: it saturates at 33, which 2^14
# registers reach at about 2^46 distinct values
RANK_BITS = 32
_RANK_MASK = (1 << RANK_BITS) - 1


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(27))
        h = h * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _string_hashes(values: pa.Array) -> np.ndarray:
    """A 64-bit hash per (non-null) string: its length, then each 8-byte word of it (the last
    one zero-padded) folded in with `_mix`. A string's hash depends on its bytes alone, not on
    the batch it comes in; a batch costs one take of 8 bytes per word per string."""
    values = values.cast(pa.large_string()) if not pa.types.is_large_string(values.type) else values
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[
        values.offset : values.offset + len(values) + 1
    ]
    data = values.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    start, end = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets)
    padded = np.zeros(end - start + 8, dtype=np.uint8)  # every word can read 8 bytes
    padded[: end - start] = raw[start:end]
    # the 8 bytes from each byte offset as one (unaligned) little-endian word
    words = np.ndarray(shape=(end - start + 1,), dtype="<u8", buffer=padded, strides=(1,))
    starts = offsets[:-1] - start
    h = _mix(lengths.astype(np.uint64) * _GOLDEN)
    count = (lengths + 7) // 8
    for k in range(int(count.max()) if len(count) else 0):
        live = count > k
        idx = None if live.all() else np.flatnonzero(live)
        at = starts if idx is None else starts[idx]
        word = np.take(words, at + 8 * k).astype(np.uint64, copy=False)
        left = (lengths if idx is None else lengths[idx]) - 8 * k
        word &= _TAIL[np.minimum(left, 8)]  # the bytes past the string's end are not its own
        if idx is None:
            h = _mix(h ^ word)
        else:
            h[idx] = _mix(h[idx] ^ word)
    return h


def value_hashes(values: pa.Array) -> np.ndarray:
    """A 64-bit hash of each non-null value (equal values, equal hashes)."""
    values = values.filter(values.is_valid()) if values.null_count else values
    t = values.type
    if pa.types.is_dictionary(t):
        values = values.dictionary_decode()
        t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _string_hashes(values)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return _string_hashes(values.cast(pa.large_binary()).view(pa.large_string()))
    if pa.types.is_boolean(t):
        ints = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.uint64)
    elif pa.types.is_floating(t):
        floats = np.asarray(values.cast(pa.float64()).to_numpy(), dtype=np.float64)
        ints = (floats + 0.0).view(np.uint64)  # -0.0 and 0.0 are one value
    elif pa.types.is_decimal(t):
        return _string_hashes(values.cast(pa.string()))
    else:  # integers, dates, times, timestamps, durations
        width = t.bit_width if t.bit_width in (8, 16, 32, 64) else 64
        ints = np.asarray(values.cast(pa.int64() if width == 64 else pa.int32()).to_numpy())
        ints = ints.astype(np.int64).view(np.uint64)
    return _mix(ints)


class DistinctCounter:
    """Counts distinct non-null values over batches: exact, then estimated."""

    def __init__(self) -> None:
        self._exact: pa.Array | None = None
        self._registers: np.ndarray | None = None

    @property
    def exact(self) -> bool:
        return self._registers is None

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        """Count a batch, an array or the chunks a reader's blocks left it in: each batch is
        one unique (exact phase) or one hashing pass (estimate), not one per chunk, so the
        merge with the values seen so far and numpy's per-call costs are paid per batch."""
        chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
        chunks = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in chunks]
        if not chunks:
            return
        if self._registers is not None:
            self._sketch(chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks))
            return
        seen = pc.unique(pa.chunked_array(chunks, type=chunks[0].type))
        seen = seen.drop_null() if seen.null_count else seen  # no copy of the batch without nulls
        # a part may hold the column only as nulls (Arrow's null type): it adds nothing
        if self._exact is not None and not pa.types.is_null(self._exact.type):
            if pa.types.is_null(seen.type):
                seen = self._exact
            else:
                seen = pc.unique(pa.concat_arrays([self._exact, seen.cast(self._exact.type)]))
        if len(seen) <= EXACT_LIMIT:
            self._exact = seen
            return
        self._registers = np.zeros(M, dtype=np.uint8)
        self._sketch(seen)
        self._exact = None

    def _sketch(self, values: pa.Array) -> None:
        h = value_hashes(values)
        if not len(h):
            return
        index = (h >> np.uint64(64 - P)).astype(np.intp)
        # rank: leading zeros of the next RANK_BITS bits, plus one. A float64 holds a 32-bit
        # integer exactly, and frexp's exponent is its bit length (0 for 0).
        word = ((h >> np.uint64(64 - P - RANK_BITS)) & np.uint64(_RANK_MASK)).astype(np.float64)
        _, length = np.frexp(word)
        rank = (RANK_BITS + 1 - length).astype(np.uint8)
        np.maximum.at(self._registers, index, rank)

    def count(self) -> int:
        if self._registers is None:
            return 0 if self._exact is None else len(self._exact)
        registers = self._registers.astype(np.float64)
        alpha = 0.7213 / (1 + 1.079 / M)
        estimate = alpha * M * M / np.sum(2.0**-registers)
        zeros = int(np.count_nonzero(self._registers == 0))
        if estimate <= 2.5 * M and zeros:
            estimate = M * np.log(M / zeros)  # linear counting for small cardinalities
        return max(int(round(estimate)), EXACT_LIMIT + 1)
