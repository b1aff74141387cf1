"""Apply a change set to a prepared version, re-run the blocking checks and record both: what
the console's corrections page and `dmetl outbox edit` share."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from etl_assets.console import store
from etl_assets.console.changes import (
    ChangeSet,
    ChangeSetError,
    CheckResult,
    TableSummary,
    apply_changes,
    correctable_tables,
    run_checks,
)
from etl_assets.metadata.loader import LoadedModule
from etl_assets.stages import asset_key
from resources.outbox import OutboxResource

CORRECTABLE_STATES = ("waiting_for_approval", "rejected")


@dataclass(frozen=True)
class Correction:
    change_set: int
    summary: dict[str, TableSummary]
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def audit_detail(self, reason: str) -> dict:
        """For the audit log: which tables and keys, counts, the reason; never values."""
        return {
            "change_set": self.change_set,
            "reason": reason,
            "tables": {t: s.as_dict() for t, s in self.summary.items()},
            "checks_passed": self.passed,
        }


def outbox_frames(outbox: OutboxResource, loaded: LoadedModule, version: str) -> dict:
    return {
        name: outbox.read_table(loaded.name, version, name)
        for name in correctable_tables(loaded)
        if outbox.has_table(loaded.name, version, name)
    }


def correct(
    conn: psycopg.Connection, outbox: OutboxResource, loaded: LoadedModule, version: str,
    changes: ChangeSet, by: str, reason: str, storage=None,
) -> Correction:  # fmt: skip
    """Apply `changes` to `version`'s outbox, re-run the checks and record the change set and
    the results (approval is refused while a check fails). `storage` (the ParquetIOManager)
    gives t-closeness its clean reference."""
    if not reason.strip():
        raise ChangeSetError("reason: say why the records are corrected")
    frames = outbox_frames(outbox, loaded, version)
    if not frames:
        raise ChangeSetError(f"{loaded.name} {version}: no outbox table to correct")
    corrected, summary = apply_changes(frames, correctable_tables(loaded), changes)
    for name, df in corrected.items():
        outbox.write_table(loaded.name, version, name, df)
    reread = outbox_frames(outbox, loaded, version)

    def reference(table):
        if storage is None:
            return None
        try:
            return storage.read(asset_key(loaded.name, "clean", table.name), version)
        except OSError:  # not in the step storage (any more)
            return None

    checks = run_checks(loaded, version, outbox, reread, summary, reference)
    raw = [c.model_dump() for c in changes.changes]
    with conn.transaction():
        sid = store.add_change_set(
            conn, loaded.name, version, by, reason.strip(), raw,
            {t: s.as_dict() for t, s in summary.items()},
        )  # fmt: skip
        correction = Correction(sid, summary, checks)
        store.record_checks(
            conn, loaded.name, version, sid, correction.passed, [c.as_dict() for c in checks]
        )
    return correction
