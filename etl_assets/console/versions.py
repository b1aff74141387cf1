"""Every version of a module and its state, from the registry (allocations, approvals,
publications), the console's decisions, the outbox and Dagster's run records."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import dagster as dg
import psycopg

from etl_assets import registry, semver
from etl_assets.console import store
from etl_assets.execution import MODULE_TAG
from etl_assets.orchestration.jobs import upload_job_name
from resources.outbox import OutboxResource

PARTITION_TAG = "dagster/partition"
IN_PROGRESS = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}
FAILED = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
LABELS = {
    "preparing": "preparing",
    "waiting_for_approval": "waiting for approval",
    "approved": "approved",
    "uploading": "uploading",
    "published": "published",
    "superseded": "superseded",
    "expired": "expired",
    "rejected": "rejected",
    "discarded": "discarded",
    "failed": "failed",
}


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    job: str
    status: str
    created: dt.datetime
    by: str  # the user who launched it, else what triggered it

    @property
    def in_progress(self) -> bool:
        return dg.DagsterRunStatus(self.status) in IN_PROGRESS


@dataclass
class VersionInfo:
    version: str
    state: str = "preparing"
    current: bool = False
    runs: list[RunInfo] = field(default_factory=list)  # newest first
    triggered_by: str = ""
    triggered_at: dt.datetime | None = None
    in_outbox: bool = False
    approval: dict | None = None
    published_at: dt.datetime | None = None
    decisions: list[store.Decision] = field(default_factory=list)
    note: str = ""

    @property
    def label(self) -> str:
        return LABELS[self.state] + (" (current)" if self.current else "")

    @property
    def run(self) -> RunInfo | None:
        return self.runs[0] if self.runs else None

    @property
    def running(self) -> RunInfo | None:
        return next((r for r in self.runs if r.in_progress), None)


def _who(run: dg.DagsterRun) -> str:
    tags = run.tags
    return tags.get("user") or tags.get("dm/trigger") or ("schedule" if "dagster/schedule_name" in tags else "sensor" if "dagster/sensor_name" in tags else "")  # fmt: skip


def module_runs(instance: dg.DagsterInstance, module: str) -> dict[str, list[RunInfo]]:
    """The module's runs by version (partition), newest first."""
    records = instance.get_run_records(dg.RunsFilter(tags={MODULE_TAG: module}), limit=2000)
    out: dict[str, list[RunInfo]] = {}
    for rec in records:
        run = rec.dagster_run
        version = run.tags.get(PARTITION_TAG)
        if not version:
            continue
        created = rec.create_timestamp
        out.setdefault(version, []).append(
            RunInfo(run.run_id, run.job_name, run.status.value, created, _who(run))
        )
    for runs in out.values():
        runs.sort(key=lambda r: r.created, reverse=True)
    return out


def version_state(v: VersionInfo, module: str, published: set[str]) -> str:
    """The state of `v` (before "published" is split into current and superseded)."""
    last = v.decisions[-1].decision if v.decisions else None
    if last == "discarded":
        return "discarded"
    if v.version in published:
        return "published"
    running = v.running
    if running is not None:
        return "uploading" if running.job == upload_job_name(module) else "preparing"
    if v.run is not None and dg.DagsterRunStatus(v.run.status) in FAILED:
        return "failed"
    if not v.in_outbox:
        ran = v.run is not None and v.run.status == dg.DagsterRunStatus.SUCCESS.value
        return "expired" if ran else "preparing"
    if last == "rejected":
        return "rejected"
    if v.approval is not None:
        return "approved"
    return "waiting_for_approval"


def module_versions(
    conn: psycopg.Connection, instance: dg.DagsterInstance, outbox: OutboxResource, module: str
) -> list[VersionInfo]:
    """Every version of `module` known anywhere, newest first, each with its state."""
    allocations = registry.module_allocations(conn, module)
    approvals = registry.module_approvals(conn, module)
    published = {r["version"]: r for r in registry.list_versions(conn, module)}
    decided = store.decisions(conn, module)
    discarded = registry.discarded_versions(conn, module)
    runs = module_runs(instance, module)
    in_outbox = set(outbox.versions(module))
    names = {*allocations, *approvals, *published, *decided, *runs, *in_outbox, *discarded}
    names = {n for n in names if semver.is_version(n)}
    current = registry.current_version(conn, module)
    expired = {n for n, r in published.items() if r.get("state") == registry.EXPIRED}
    out = []
    for name in sorted(names, key=semver.parse, reverse=True):
        v = VersionInfo(
            name, runs=runs.get(name, []), in_outbox=name in in_outbox,
            approval=approvals.get(name), decisions=decided.get(name, []),
        )  # fmt: skip
        alloc = allocations.get(name)
        first = v.runs[-1] if v.runs else None
        v.triggered_by = (first.by if first else "") or (alloc["trigger"] if alloc else "")
        v.triggered_at = first.created if first else (alloc["allocated_at"] if alloc else None)
        if name in published:
            v.published_at = published[name]["published_at"]
        v.state = "discarded" if name in discarded else version_state(v, module, set(published))
        if v.state == "published" and name in expired:
            v.state, v.note = "expired", "its published data was removed by retention"
        elif v.state == "published" and name != current:
            v.state = "superseded"
        v.current = name == current
        if v.state == "failed" and v.run and v.run.status == "CANCELED":
            v.note = "stopped"
        out.append(v)
    return out


def find_version(versions: list[VersionInfo], version: str) -> VersionInfo | None:
    return next((v for v in versions if v.version == version), None)
