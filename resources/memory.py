"""Freed memory given back to the operating system.

What a batch or a step frees stays with the allocators (Arrow's pool, glibc's heap) unless they
are told to return it, and glibc's heap keeps large freed blocks once its dynamic mmap threshold
has risen. Measured on the streamed clean stage at 10M orders (from a 332 MB start): its record
pass peaked at 689 MB, and held 686 MB at its end, 418 MB once collected and trimmed. With the
reference cycles below removed and a trim between batches it peaks at 504 MB.

Staged tables call `trim_memory` before the batches they hand out (always, so a step starts
from what the last one still holds) and between them (when its cost has been paid for).

Only memory no object holds can be returned: garbage in reference cycles waits for a full
collection (~0.1 s with the code location loaded, too slow per batch). Code on the batch path
avoids making cycles; pandas' `.str` and `.dt` accessors do (see `etl_assets.clean.coerce`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from functools import cache

import pyarrow as pa


@cache
def _malloc_trim():
    """glibc's `malloc_trim`, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


TRIM_SHARE = 0.05  # of the time between trims, at most this much is spent trimming
_next_trim = 0.0


def trim_memory(force: bool = False) -> None:
    """Return the allocators' free memory (what no object holds) to the operating system.

    Between batches a trim is skipped until its cost is paid for: after a trim that took t,
    the next waits 20 t (unless `force`d). With the writer, profile and typing threads a trim
    costs more (more arenas to walk, a larger heap): at 10M orders the streamed clean spent
    ~1.4 s of its 10 s trimming after every batch."""
    global _next_trim
    started = time.monotonic()
    if not force and started < _next_trim:
        return
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    _next_trim = started + (time.monotonic() - started) / TRIM_SHARE
