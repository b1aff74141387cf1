"""The hash chain: canonical event text, each row's keyed hash, and checking a sequence of rows.

Row `n` stores `hash_n = HMAC(key, f"{n}\n{hex(hash_{n-1})}\n{text_n}")` where `text_n` is the
event's canonical JSON (sorted keys, no spaces, UTF-8). Changing any byte of a row, removing one,
or moving one to another position breaks the chain at that row; the key is not in the database,
so whoever can write the table cannot forge a consistent chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = b"\x00" * 32


def canonical(event: Mapping[str, Any]) -> str:
    """The one text form of an event that is hashed and stored."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(key: bytes, seq: int, prev: bytes, text: str) -> bytes:
    message = f"{seq}\n{prev.hex()}\n{text}".encode()
    return hmac.new(key, message, hashlib.sha256).digest()


@dataclass(frozen=True)
class StoredRow:
    """One row as read back from the table (the generated columns are not needed)."""

    seq: int
    at_text: str  # the row's `at` column as ISO text, compared with the hashed body
    body: str
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class Problem:
    """The first position where the log is not what was written."""

    position: int
    kind: str  # edited | deleted | reordered | truncated | checkpoint
    message: str

    def __str__(self) -> str:
        return f"position {self.position}: {self.kind}: {self.message}"


def _moved_from(key: bytes, row: StoredRow, positions: int) -> int | None:
    """Where an intact row was written, when that is not where it is now (one HMAC per
    candidate position, done once, for the first row that does not fit)."""
    for origin in range(1, positions + 2):
        if origin != row.seq and hmac.compare_digest(
            row_hash(key, origin, row.prev_hash, row.body), row.hash
        ):
            return origin
    return None


def check_rows(key: bytes, rows: Iterable[StoredRow]) -> tuple[Problem | None, int, bytes]:
    """Walk the rows in `seq` order; the first problem (or None), the last seq and hash."""
    rows = list(rows)
    expected, prev = 1, GENESIS
    for row in rows:
        if row.seq != expected:
            what = "deleted" if row.seq > expected else "duplicated"
            return Problem(expected, what, f"row {expected} is missing (next is {row.seq})"), 0, b""
        if not hmac.compare_digest(row_hash(key, row.seq, row.prev_hash, row.body), row.hash):
            origin = _moved_from(key, row, len(rows))
            if origin is not None:
                msg = f"the row written at position {origin} is now at {row.seq}"
                return Problem(row.seq, "reordered", msg), 0, b""
            return Problem(row.seq, "edited", "its content does not match its keyed hash"), 0, b""
        if row.prev_hash != prev:
            origin = _moved_from(key, row, len(rows))
            kind = "reordered" if origin is not None else "edited"
            return Problem(row.seq, kind, "it does not follow the row before it"), 0, b""
        if json.loads(row.body).get("at") != row.at_text:
            return (
                Problem(row.seq, "edited", "its time column differs from the hashed event"),
                0,
                b"",
            )
        expected, prev = row.seq + 1, row.hash
    return None, expected - 1, prev
