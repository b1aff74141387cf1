"""The script collector: run a program that prints records as JSON on stdout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from etl_assets.errors import ExtractionError
from etl_assets.extract.records import parse_json_records, records_to_frame
from etl_assets.metadata import CollectionEntry, ScriptCollector

STDERR_KEPT = 200_000  # characters of a failing script's stderr kept (restricted zone)
GRACE_SECONDS = 5.0  # between SIGTERM and SIGKILL to a timed-out script's process group
TIMEOUT_RETRIES = 1  # a script that timed out is tried once more, not every step retry


def script_command(script: ScriptCollector, folder: Path) -> list[str]:
    path = (folder / script.path).resolve()
    if not path.is_file():
        raise ExtractionError(f"script not found: {path}")
    if path.suffix == ".py":
        return [sys.executable, str(path), *script.args]
    if not os.access(path, os.X_OK):
        raise ExtractionError(f"{path}: not executable (chmod +x, or use a .py file)")
    return [str(path), *script.args]


def run_script(
    script: ScriptCollector, folder: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run the script in its module folder with exactly `env` as its environment, in a process
    group of its own: on timeout (or when the step is interrupted) the script and every process
    it started are ended (SIGTERM, then SIGKILL after a grace period). Fail loudly."""
    cmd = script_command(script, folder)
    proc = subprocess.Popen(
        cmd,
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=script.timeoutSeconds)
    except subprocess.TimeoutExpired:
        end_process_group(proc)
        raise ExtractionError(
            f"script {script.path} did not finish within timeoutSeconds={script.timeoutSeconds:g}"
            " s; it and the processes it started were stopped",
            retryable=True,
            retry_limit=TIMEOUT_RETRIES,
        ) from None
    except BaseException:  # the step was interrupted or terminated: take the script along
        end_process_group(proc)
        raise
    if proc.returncode != 0:
        stderr = stderr or ""
        lines = len(stderr.splitlines())
        raise ExtractionError(
            f"script {script.path} exited with code {proc.returncode} and wrote {lines} lines"
            " to stderr",
            retryable=True,
            restricted_detail=stderr[-STDERR_KEPT:],
        )
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def _live_members(pgid: int) -> list[psutil.Process]:
    """The processes of group `pgid` that have not exited. A zombie has: it is only waiting
    for its parent (or, once orphaned, for init) to reap it."""
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
    return members


def _wait_for_group(pgid: int, seconds: float) -> None:
    """Until every member of group `pgid` has exited, or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while _live_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


def end_process_group(proc: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM to the script's whole process group; SIGKILL to what is left after `grace`.
    Returns once every member has exited (a SIGKILL is delivered asynchronously: `killpg`
    returns before the processes are gone), or after another `grace` if one cannot be ended."""
    pgid = proc.pid  # start_new_session: the script leads its own group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    started = time.monotonic()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)  # reap the leader, so only live members keep the group
    _wait_for_group(pgid, grace - (time.monotonic() - started))
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
        proc.communicate(timeout=grace)  # close the pipes and reap the leader
    _wait_for_group(pgid, grace)


def extract_script(script: ScriptCollector, folder: Path, env: dict[str, str]) -> pd.DataFrame:
    proc = run_script(script, folder, env)
    records = parse_json_records(proc.stdout, f"output of script {script.path}")
    return records_to_frame(records)


def extract_script_entry(entry: CollectionEntry, folder: Path, context: Any) -> pd.DataFrame:
    """The script collector of a collection entry, with the step's environment."""
    env = context.script_environment(
        entry.extract, {"DM_TABLE": entry.table, "DM_SOURCE": entry.source}
    )
    return extract_script(entry.extract, folder, env)
