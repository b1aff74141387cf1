"""`dmetl audit verify`: the chain, the head row and the signed checkpoints, checked together."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from etl_assets.audit import checkpoints as cps
from etl_assets.audit.chain import Problem, check_rows
from etl_assets.audit.store import head, stored_rows


@dataclass(frozen=True)
class Verdict:
    """What verification found: the first problem, or None when the log is intact."""

    problem: Problem | None
    last_seq: int
    checkpoints: int
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None


def _against_checkpoints(
    loaded: cps.Loaded, last_seq: int, hashes: dict[int, bytes]
) -> Problem | None:
    if loaded.invalid:
        return Problem(0, "checkpoint", f"bad signature or format: {', '.join(loaded.invalid)}")
    for cp in loaded.valid:
        if cp.seq > last_seq:
            msg = f"the log ends at {last_seq}, but a checkpoint of {cp.at} saw {cp.seq} rows"
            return Problem(last_seq + 1, "truncated", msg)
        if hashes.get(cp.seq) != cp.hash:
            msg = f"row {cp.seq} differs from the checkpoint of {cp.at} ({cp.name})"
            return Problem(cp.seq, "edited", msg)
    return None


def verify(
    conn: psycopg.Connection,
    hmac_key: bytes,
    store: cps.LocalStore | cps.S3Store | None,
    public_key: cps.Ed25519PublicKey | None,
) -> Verdict:
    """Check every row's keyed hash and link, the head row, and every checkpoint."""
    loaded = cps.load(store, public_key) if store is not None and public_key else None
    wanted = {cp.seq for cp in loaded.valid} if loaded else set()
    hashes: dict[int, bytes] = {}

    def rows():
        for row in stored_rows(conn):
            if row.seq in wanted:
                hashes[row.seq] = row.hash
            yield row

    problem, last_seq, last_hash = check_rows(hmac_key, rows())
    notes = []
    count = len(loaded.valid) if loaded else 0
    if loaded is None:
        notes.append("no checkpoint key or place: a cut tail cannot be detected")
    if problem is not None:
        return Verdict(problem, last_seq, count, notes)
    head_seq, head_hash = head(conn)
    if head_seq > last_seq:
        msg = f"the log ends at {last_seq}, but its head row says {head_seq}"
        return Verdict(Problem(last_seq + 1, "truncated", msg), last_seq, count, notes)
    if head_seq != last_seq or (last_seq and head_hash != last_hash):
        msg = f"the head row ({head_seq}) does not match the last row ({last_seq})"
        return Verdict(Problem(min(head_seq, last_seq) or 1, "edited", msg), last_seq, count, notes)
    if loaded is not None:
        problem = _against_checkpoints(loaded, last_seq, hashes)
    return Verdict(problem, last_seq, count, notes)
