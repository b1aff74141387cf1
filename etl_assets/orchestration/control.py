"""Run control: what the UI and GraphQL let a task manager do, as plain functions.

`dmetl pause|resume|skip|cancel|retry|stop` and the console call these; each takes the Dagster
instance, and where it needs the code location (schedules, sensors, a job to re-execute) a
workspace request context, exactly as Dagster's own GraphQL resolvers do:

- `pause` / `resume`: stop / start the module's schedules and sensors (instigator state in the
  instance, what the UI's toggles write); a pause remembers what it stopped, so a resume starts
  those again and leaves a sensor nobody had turned on off.
- `skip_next_tick`: a recorded request the module's schedule consumes at its next tick,
  returning a skip reason that names who asked (shown in the schedule's tick history).
- `cancel`: the run coordinator's `cancel_run` (a queued run leaves the queue, a started one is
  terminated by the run launcher); `force` marks a run canceled that no launcher can reach.
- `retry`: re-execute the newest failed (or canceled) run of a version from failure, through
  the run launcher: finished steps keep their outputs and are not run again.
- `stop`: cancel the version's active runs; with `discard`, also delete its outbox folders
  (published and restricted zone, the quarantine with it) and step storage and record it as
  discarded, so it is never uploaded. A published version is never discarded.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg
import psycopg

from etl_assets import registry
from etl_assets._dagster_private import (
    BaseWorkspaceRequestContext,
    JobSubsetSelector,
    ReexecutionStrategy,
    RemoteSchedule,
    RemoteSensor,
)
from etl_assets.orchestration.jobs import automation_names
from etl_assets.orchestration.versions import active_runs
from resources.io_manager import ParquetIOManager
from resources.outbox import OutboxResource

CANCELABLE = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED)
RETRYABLE = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


class ControlRefused(RuntimeError):
    """The operation cannot be done; the message says why and what to do instead."""


@dataclass(frozen=True)
class InstigatorChange:
    name: str
    kind: str  # schedule | sensor
    was_running: bool
    running: bool


@dataclass(frozen=True)
class SkipRequest:
    pending: int  # skip requests not yet consumed, this one included
    tick: dt.datetime | None  # the tick this request skips (if the window allows it)


@dataclass(frozen=True)
class CancelOutcome:
    run_id: str
    status_before: str
    status: str
    message: str


@dataclass(frozen=True)
class RetryOutcome:
    parent_run_id: str
    run_id: str
    steps: list[str]


@dataclass(frozen=True)
class StopOutcome:
    canceled: list[CancelOutcome] = field(default_factory=list)
    discarded: bool = False
    deleted_step_storage: list[str] = field(default_factory=list)


# --- schedules and sensors --------------------------------------------------------------------


def module_instigators(
    workspace: BaseWorkspaceRequestContext, module: str
) -> list[RemoteSchedule | RemoteSensor]:
    """The module's own schedules and sensors (not the code location's shared ones)."""
    names = automation_names(module)
    found: list[RemoteSchedule | RemoteSensor] = []
    for location in workspace.code_locations:
        for repo in location.get_repositories().values():
            found += [i for i in (*repo.get_schedules(), *repo.get_sensors()) if i.name in names]
    return found


def _kind(instigator: RemoteSchedule | RemoteSensor) -> str:
    return "schedule" if isinstance(instigator, RemoteSchedule) else "sensor"


def _state(instance: dg.DagsterInstance, instigator):
    stored = instance.get_instigator_state(
        instigator.get_remote_origin_id(), instigator.selector_id
    )
    return instigator.get_current_instigator_state(stored)


def _set_running(instance: dg.DagsterInstance, instigator, running: bool) -> InstigatorChange:
    was = _state(instance, instigator).is_running
    origin, selector = instigator.get_remote_origin_id(), instigator.selector_id
    schedule = _kind(instigator) == "schedule"
    if running and not was:
        (instance.start_schedule if schedule else instance.start_sensor)(instigator)
    elif was and not running:
        (instance.stop_schedule if schedule else instance.stop_sensor)(origin, selector, instigator)
    now = _state(instance, instigator).is_running
    return InstigatorChange(instigator.name, _kind(instigator), was, now)


def _require(instigators: Sequence, module: str, what: str) -> None:
    if not instigators:
        raise ControlRefused(
            f"{module}: no {what} in the workspace (is the module valid and the code location"
            " loaded? a module gets a schedule from its `schedule` metadata)"
        )


def status(instance: dg.DagsterInstance, workspace: BaseWorkspaceRequestContext, module: str):
    """(name, kind, running) of each of the module's schedules and sensors."""
    return [
        (i.name, _kind(i), _state(instance, i).is_running)
        for i in module_instigators(workspace, module)
    ]


def pause(
    instance: dg.DagsterInstance,
    workspace: BaseWorkspaceRequestContext,
    conn: psycopg.Connection,
    module: str,
    by: str,
) -> list[InstigatorChange]:
    """Stop every schedule and sensor of `module`, remembering which were running."""
    instigators = module_instigators(workspace, module)
    _require(instigators, module, "schedule or sensor")
    changes = [_set_running(instance, i, False) for i in instigators]
    registry.record_pause(conn, module, by, [c.name for c in changes if c.was_running])
    return changes


def resume(
    instance: dg.DagsterInstance,
    workspace: BaseWorkspaceRequestContext,
    conn: psycopg.Connection,
    module: str,
) -> list[InstigatorChange]:
    """Start what `pause` stopped (every schedule and sensor if the module was not paused)."""
    instigators = module_instigators(workspace, module)
    _require(instigators, module, "schedule or sensor")
    stopped = registry.take_pause(conn, module)
    chosen = [i for i in instigators if stopped is None or i.name in stopped]
    return [_set_running(instance, i, True) for i in chosen]


def skip_next_tick(
    workspace: BaseWorkspaceRequestContext, conn: psycopg.Connection, module: str, by: str
) -> SkipRequest:
    """Record that the module's next scheduled tick is skipped (each request skips one)."""
    schedules = [i for i in module_instigators(workspace, module) if _kind(i) == "schedule"]
    _require(schedules, module, "schedule")
    registry.request_skip(conn, module, by)
    pending = registry.pending_skips(conn, module)
    ticks = schedules[0].execution_time_iterator(time.time())
    return SkipRequest(pending, next(itertools.islice(ticks, pending - 1, None), None))


# --- runs -------------------------------------------------------------------------------------


def cancel(instance: dg.DagsterInstance, run_id: str, *, force: bool = False) -> CancelOutcome:
    """Cancel a queued run or terminate a started one (`force`: mark it canceled regardless)."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ControlRefused(f"no run {run_id!r} in the instance {instance.root_directory}")
    before = run.status
    if run.is_finished:
        raise ControlRefused(f"run {run_id} has already ended ({before.value})")
    if before not in CANCELABLE and not force:
        raise ControlRefused(
            f"run {run_id} is {before.value}: only queued and started runs can be canceled"
            " (--force marks it canceled)"
        )
    if before == dg.DagsterRunStatus.STARTED and run.remote_job_origin is None and not force:
        # no launcher started it (`dmetl run` executes in its own process): asking the launcher
        # would only leave it "canceling" while it goes on
        raise ControlRefused(
            f"run {run_id} was not started by a run launcher (a run started by `dmetl run`"
            " executes in that process: stop it there, or --force marks it canceled)"
        )
    done = before in CANCELABLE and instance.run_coordinator.cancel_run(run_id)
    if not done and force:
        instance.report_run_canceled(
            instance.get_run_by_id(run_id),
            message="Marked canceled by run control (dmetl cancel --force); what the run"
            " started may still be running.",
        )
        done = True
    now = instance.get_run_by_id(run_id)
    after = now.status
    if not done:
        raise ControlRefused(
            f"run {run_id}: the run launcher could not terminate it (a run started by `dmetl"
            " run` executes in that process: stop it there, or --force marks it canceled)"
        )
    message = "canceled" if now.is_finished else f"{after.value.lower()}: termination requested"
    return CancelOutcome(run_id, before.value, after.value, message)


def newest_run(instance: dg.DagsterInstance, module: str, version: str) -> dg.DagsterRun | None:
    records = instance.get_run_records(
        dg.RunsFilter(tags={"dm/module": module, "dagster/partition": version}), limit=1
    )
    return records[0].dagster_run if records else None


def _remote_job(workspace: BaseWorkspaceRequestContext, run: dg.DagsterRun):
    origin = run.remote_job_origin
    wanted = origin.location_name if origin is not None else None
    for location in workspace.code_locations:
        if wanted is not None and location.name != wanted:
            continue
        for repo in location.get_repositories().values():
            if repo.has_job(run.job_name):
                selector = JobSubsetSelector(
                    location_name=location.name,
                    repository_name=repo.name,
                    job_name=run.job_name,
                    op_selection=None,
                    asset_selection=run.asset_selection,
                    asset_check_selection=run.asset_check_selection,
                )
                return location, location.get_job(selector)
    raise ControlRefused(f"job {run.job_name} of run {run.run_id} is not in the workspace")


def retry(
    instance: dg.DagsterInstance,
    workspace: BaseWorkspaceRequestContext,
    conn: psycopg.Connection,
    module: str,
    version: str,
) -> RetryOutcome:
    """Re-execute the newest run of `module` `version` from failure, through the launcher."""
    if registry.is_discarded(conn, module, version):
        raise ControlRefused(f"{module} {version} was discarded; run a new version instead")
    parent = newest_run(instance, module, version)
    if parent is None:
        raise ControlRefused(f"{module} {version} has no run to retry")
    if parent.status not in RETRYABLE:
        what = "is still in progress" if not parent.is_finished else "succeeded"
        raise ControlRefused(
            f"{module} {version}: its newest run {parent.run_id} {what} ({parent.status.value});"
            " only a failed or canceled run is retried"
        )
    location, remote_job = _remote_job(workspace, parent)
    run = instance.create_reexecuted_run(
        request_context=workspace,
        parent_run=parent,
        code_location=location,
        remote_job=remote_job,
        strategy=ReexecutionStrategy.FROM_FAILURE,
        extra_tags={"dm/trigger": "retry"},
        use_parent_run_tags=True,
    )
    instance.submit_run(run.run_id, workspace)
    return RetryOutcome(parent.run_id, run.run_id, sorted(run.step_keys_to_execute or []))


def stop(
    instance: dg.DagsterInstance,
    conn: psycopg.Connection,
    module: str,
    version: str,
    by: str,
    *,
    discard: bool = False,
    outbox: OutboxResource | None = None,
    step_storage: ParquetIOManager | None = None,
    wait_seconds: float = 60,
) -> StopOutcome:
    """Cancel the version's active runs; with `discard`, throw the prepared version away."""
    if discard and registry.is_published(conn, module, version):
        raise ControlRefused(
            f"{module} {version} is published: published versions are never discarded"
        )
    canceled = [
        cancel(instance, run_id)
        for run_id in active_runs(instance, module, version)
        if instance.get_run_by_id(run_id).status in CANCELABLE
    ]
    if not discard:
        return StopOutcome(canceled)
    deadline = time.monotonic() + wait_seconds
    while (left := active_runs(instance, module, version)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        raise ControlRefused(
            f"{module} {version}: run {left[0]} has not ended yet; nothing was discarded (run"
            " the stop again once it has ended, or cancel it with --force)"
        )
    registry.record_discard(conn, module, version, by)
    if outbox is not None:
        outbox.delete_version(module, version)
    deleted = step_storage.delete_partition(module, version) if step_storage else []
    return StopOutcome(canceled, True, deleted)
