"""Which process runs a run, and the run launcher that lets run monitoring find dead ones.

Every run records its worker in the run tag `dm/run_worker`: host, pid, the process's start
time (so a recycled pid is not taken for the worker) and, for a worker that leads its own
process group, that group. `dmetl run` records itself (it executes the run in process);
`ProcessGroupRunLauncher` records the `dagster api execute_run` process it starts in a new
session, so the step processes of a multiprocess run (and their forkserver) share its group.

The daemon's run monitoring asks the instance's launcher about every STARTED run
(`check_run_worker_health`). This launcher answers for both kinds: a worker on this host that
is gone is reported FAILED, so the run is marked failed and the queue moves on, and the rest of
its process group and the scripts it started (found by their `DM_RUN_ID`) are killed first, so
no step process or script goes on working for a failed run. A
worker on another host, or a run with no recorded worker, is left to whoever can see it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import dagster as dg
import psutil

from etl_assets._dagster_private import (
    CheckRunHealthResult,
    ConfigurableClass,
    ConfigurableClassData,
    ExecuteRunArgs,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)

WORKER_TAG = "dm/run_worker"


@dataclass(frozen=True)
class RunWorker:
    """The process that executes a run, as recorded in its `dm/run_worker` tag."""

    host: str
    pid: int
    started: float
    pgid: int | None = None
    """the worker's own process group (its step processes), killed when the worker is gone"""

    @classmethod
    def of(cls, pid: int, own_group: bool = False) -> RunWorker:
        started = psutil.Process(pid).create_time()
        return cls(socket.gethostname(), pid, started, pid if own_group else None)

    @classmethod
    def current(cls) -> RunWorker:
        """This process (`dmetl run`); its group is the shell's job, never killed on its behalf."""
        return cls.of(os.getpid())

    def tag(self) -> dict[str, str]:
        return {WORKER_TAG: json.dumps(asdict(self), sort_keys=True)}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> RunWorker | None:
        raw = tags.get(WORKER_TAG)
        if not raw:
            return None
        try:
            return cls(**json.loads(raw))
        except (TypeError, ValueError):
            return None

    @property
    def local(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """Whether the recorded process still runs (a zombie is dead; a new process that got
        the same pid has another start time)."""
        try:
            proc = psutil.Process(self.pid)
            return (
                abs(proc.create_time() - self.started) < 0.5
                and proc.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False

    def end_group(self) -> None:
        """Kill whatever is left of the worker's process group (its step processes)."""
        if self.pgid is None:
            return
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def end_scripts(run_id: str) -> int:
    """Kill the process groups of scripts a run started (their environment has its DM_RUN_ID):
    they run in sessions of their own, so a dead worker's group does not hold them."""
    ended = 0
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("DM_RUN_ID") != run_id:
                continue
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
            ended += 1
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return ended


def worker_health(run_id: str, tags: Mapping[str, str]) -> CheckRunHealthResult:
    """RUNNING unless the run's recorded worker is on this host and gone (then its group and
    its scripts are ended and the answer is FAILED)."""
    worker = RunWorker.from_tags(tags)
    if worker is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker recorded")
    if not worker.local:
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker on {worker.host}")
    if worker.alive():
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"pid {worker.pid} is running")
    worker.end_group()
    end_scripts(run_id)
    return CheckRunHealthResult(
        WorkerStatus.FAILED,
        f"the run's process (pid {worker.pid} on {worker.host}) is gone: killed or crashed"
        + (
            "; its step processes and scripts were ended"
            if worker.pgid
            else "; its scripts were ended"
        ),
    )


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every STARTED run whose recorded process on this host is gone — what run
    monitoring does in the daemon, done by `dmetl run` too, so a machine without a daemon
    does not keep killed runs STARTED for ever. Returns their run ids."""
    failed = []
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        health = worker_health(run.run_id, run.tags)
        if health.status == WorkerStatus.FAILED:
            current = instance.get_run_by_id(run.run_id)
            if current is not None and current.status == dg.DagsterRunStatus.STARTED:
                instance.report_run_failed(current, health.msg)
                failed.append(run.run_id)
    return failed


class ProcessGroupRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run as `dagster api execute_run` in a new session on this host, records it,
    and tells run monitoring when a run's process (launched here or a `dmetl run`) is gone."""

    def __init__(self, inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        self._children: dict[str, subprocess.Popen] = {}
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> ProcessGroupRunLauncher:
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if run.job_code_origin is None:
            raise RuntimeError(f"run {run.run_id} has no code origin to launch it from")
        self._reap()
        execute = ExecuteRunArgs(
            job_origin=run.job_code_origin,
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=False,
        )
        # the code location's own interpreter (its bin/ need not be on the daemon's PATH)
        python = run.job_code_origin.executable_path or sys.executable
        args = [python, "-m", "dagster", "api", "execute_run", dg.serialize_value(execute)]
        pointer = run.job_code_origin.repository_origin.code_pointer
        cwd = getattr(pointer, "working_directory", None) or None
        proc = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True)
        self._children[run.run_id] = proc
        self._instance.add_run_tags(run.run_id, RunWorker.of(proc.pid, own_group=True).tag())

    def _reap(self) -> None:
        """Collect the exit status of finished workers (a dead child is a zombie until then)."""
        for run_id, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[run_id]

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        worker = RunWorker.from_tags(run.tags)
        if worker is None or not worker.local or not worker.alive():
            return False
        self._instance.report_run_canceling(run)
        os.kill(worker.pid, signal.SIGTERM)  # Dagster's run worker handles it as an interrupt
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        self._reap()
        return worker_health(run.run_id, run.tags)

    def dispose(self) -> None:
        self._reap()
