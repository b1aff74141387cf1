"""Dead runs are detected (issue 10.1), for real: the project's dagster.yaml (queued coordinator
with one run at a time, `ProcessGroupRunLauncher`, run monitoring), the daemon, and a module
whose source can be made to hang. A SIGKILLed `dmetl run` and a SIGKILLed daemon-launched run
worker (with its step processes) are each marked failed within the monitoring interval, the
queue launches the next run, and the version published before is still the current one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml

from etl_assets import registry
from etl_assets.metadata.loader import load_module
from etl_assets.orchestration.versions import allocate
from etl_assets.run_worker import RunWorker
from resources.postgres import PostgresResource
from tests.conftest import ROOT
from tests.helpers import CONTEXT, write_module

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
POLL_SECONDS = 2  # the test instance's run_monitoring.poll_interval_seconds
DETECTED_WITHIN = POLL_SECONDS * 3 + 10  # a monitoring pass, plus the daemon's own start-up lag
TINY = {
    "@context": CONTEXT,
    "@type": "DataModule",
    "name": "tiny",
    "version": "1.0.0",
    "autoUpload": True,
    "retry": {"maxRetries": 0},
    # launched runs get a process per step: the step processes a killed worker must take along
    "execution": {"executor": "multiprocess"},
    "tables": [
        {
            "name": "items",
            "columns": [
                {"name": "item_id", "dataType": "integer"},
                {"name": "label", "dataType": "string"},
            ],
        }
    ],
    "collection": [
        {"table": "items", "source": "s", "extract": {"type": "script", "path": "source.py"}}
    ],
    "upload": {"sink": {"type": "postgres", "schema": "dm_tiny"}},
}
# hangs while the file `hang` is in the module folder (the test removes it at the end)
SOURCE = """import json, os, time
while os.path.exists("hang"):
    time.sleep(0.2)
print(json.dumps([{"item_id": i, "label": "x"} for i in range(5)]))
"""


def wait_for(what: str, predicate: Callable[[], object], timeout: float) -> object:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"not within {timeout:g} s: {what}")


@pytest.fixture
def node(tmp_path, pg_url, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    config["run_coordinator"]["config"].update(max_concurrent_runs=1, dequeue_interval_seconds=1)
    config["run_monitoring"]["poll_interval_seconds"] = POLL_SECONDS
    config["run_retries"]["enabled"] = False  # a retried run would blur which run the queue let in
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    workspace = home / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_module": {
                            "module_name": "etl_assets.definitions",
                            "attribute": "defs",
                            "location_name": "datamodule_etl",
                            "working_directory": str(ROOT),
                        }
                    }
                ]
            }
        )
    )
    mods = tmp_path / "mods"
    write_module(mods / "tiny", TINY, {"source.py": SOURCE})
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DM_POSTGRES_URL": pg_url,
        "DM_MODULES_DIR": str(mods),
        "DM_OUTBOX_ROOT": str(tmp_path / "outbox"),
        "DM_STORAGE_ROOT": str(tmp_path / "storage"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with ExitStack() as stack:
        stack.callback(lambda: (mods / "tiny" / "hang").unlink(missing_ok=True))
        log = stack.enter_context(open(tmp_path / "daemon.log", "w"))  # noqa: SIM115
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        stack.callback(daemon.wait, 30)
        stack.callback(daemon.terminate)
        instance = stack.enter_context(dg.DagsterInstance.get())
        yield instance, env, mods / "tiny", workspace, tmp_path


def dmetl_run(env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "dmetl"), "run", "tiny"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def launch(env: dict, workspace: Path, version: str) -> None:
    """Submit a run of the module's job to the queue, as an operator would."""
    subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", "tiny_job",
         "--tags", json.dumps({"dagster/partition": version})],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def the_run(instance: dg.DagsterInstance, version: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": version}))
    return runs[0] if runs else None


def status(instance: dg.DagsterInstance, version: str) -> dg.DagsterRunStatus | None:
    run = the_run(instance, version)
    return run.status if run else None


def test_killed_runs_are_failed_and_the_queue_moves_on(node, pg_url):
    instance, env, folder, workspace, tmp = node
    postgres = PostgresResource(url=pg_url)
    loaded = load_module(folder)

    first = dmetl_run(env)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    with postgres.connect(autocommit=True) as conn:
        published = registry.current_row_counts(conn, "tiny")
    assert published is not None and published[1] == {"items": 5}

    (folder / "hang").write_text("")
    # 1. a `dmetl run` killed while its source hangs
    killed_cli = dmetl_run(env)
    run_a = wait_for(
        "the dmetl run started",
        lambda: next(
            (
                r
                for r in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                if r.tags.get("dm/trigger") == "cli"
            ),
            None,
        ),
        60,
    )
    wait_for("the dmetl run's source running", lambda: scripts_of(run_a.run_id), 60)
    version_b = allocate(instance, postgres, loaded, trigger="test")
    launch(env, workspace, version_b)
    time.sleep(POLL_SECONDS * 2)
    assert status(instance, version_b) == dg.DagsterRunStatus.QUEUED  # one run at a time
    killed_cli.send_signal(signal.SIGKILL)
    killed_cli.wait()
    killed_at = time.time()
    wait_for(
        "the killed dmetl run marked failed",
        lambda: instance.get_run_by_id(run_a.run_id).status == dg.DagsterRunStatus.FAILURE,
        DETECTED_WITHIN,
    )
    print(f"dmetl run marked failed after {time.time() - killed_at:.1f} s")
    wait_for("its hanging script ended", lambda: not scripts_of(run_a.run_id), 10)

    # 2. the queue let the next run in; kill its run worker, whose steps are its own processes
    wait_for(
        "the queued run started",
        lambda: status(instance, version_b) == dg.DagsterRunStatus.STARTED,
        DETECTED_WITHIN,
    )
    worker = wait_for(
        "the launched run's worker recorded",
        lambda: RunWorker.from_tags(the_run(instance, version_b).tags),
        30,
    )
    assert worker.pgid == worker.pid
    # wait until its step is running (the hanging source script is a grandchild of the worker)
    wait_for(
        "the launched run's source running",
        lambda: any(
            "source.py" in " ".join(p.cmdline())
            for p in psutil.Process(worker.pid).children(recursive=True)
        ),
        60,
    )
    group = [p for p in psutil.process_iter() if _pgid(p) == worker.pgid]
    version_c = allocate(instance, postgres, loaded, trigger="test")
    launch(env, workspace, version_c)
    os.kill(worker.pid, signal.SIGKILL)
    killed_at = time.time()
    wait_for(
        "the killed run worker's run marked failed",
        lambda: status(instance, version_b) == dg.DagsterRunStatus.FAILURE,
        DETECTED_WITHIN,
    )
    print(f"launched run marked failed after {time.time() - killed_at:.1f} s")
    wait_for("its process group ended", lambda: not any(p.is_running() for p in group), 10)
    wait_for(
        "its hanging script ended", lambda: not scripts_of(the_run(instance, version_b).run_id), 10
    )

    # 3. the previous version is intact; the next run is let in and publishes once unblocked
    with postgres.connect(autocommit=True) as conn:
        assert registry.current_row_counts(conn, "tiny") == published
    (folder / "hang").unlink()
    wait_for(
        "the next queued run succeeded",
        lambda: status(instance, version_c) == dg.DagsterRunStatus.SUCCESS,
        120,
    )
    with postgres.connect(autocommit=True) as conn:
        assert registry.current_row_counts(conn, "tiny") == (version_c, {"items": 5})


def scripts_of(run_id: str) -> list[psutil.Process]:
    """Live processes started for the run's scripts (their environment has its DM_RUN_ID)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("DM_RUN_ID") == run_id and proc.status() != "zombie":
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except (ProcessLookupError, PermissionError):
        return None
