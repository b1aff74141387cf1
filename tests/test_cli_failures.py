"""`dmetl run` tells the cause (issue 10.7): on failure the failing step, the root cause in one
line and where the full log is, without Dagster's stack traces on stderr; after a prepare-only
run, the next step (approve)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.helpers import CONTEXT, write_module

BIN = Path(sys.executable).parent


def module(name: str, **extra) -> dict:
    return {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": name,
        "version": "0.1.0",
        "autoUpload": True,
        "retry": {"maxRetries": 1, "delaySeconds": 0},
        "tables": [{"name": "t", "columns": [{"name": "a", "dataType": "integer"}]}],
        "collection": [
            {"table": "t", "source": "s", "extract": {"type": "script", "path": "s.py"}}
        ],
        **extra,
    }


def dmetl(tmp_path: Path, pg_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "DM_POSTGRES_URL": pg_url,
        "DM_MODULES_DIR": str(tmp_path / "mods"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    (tmp_path / "home").mkdir(exist_ok=True)
    return subprocess.run(
        [str(BIN / "dmetl"), *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_a_failed_run_says_which_step_why_and_where_the_log_is(tmp_path, pg_url):
    failing = "import sys\nprint('connecting', file=sys.stderr)\nsys.exit(3)\n"
    write_module(tmp_path / "mods" / "bad", module("bad"), {"s.py": failing})
    proc = dmetl(tmp_path, pg_url, "run", "bad")
    assert proc.returncode == 1
    err = proc.stderr
    assert "failed step: bad__extract__t__s" in err
    [cause] = re.findall(r"cause: +(.*)", err)
    assert cause.startswith("t/s: script s.py exited with code 3")
    assert "Exceeded max_retries" not in err and "Stack Trace" not in err
    assert "Traceback" not in err and "dagster._core" not in err
    [run_id] = re.findall(r"FAILED \(run ([0-9a-f-]{36})\)", proc.stdout)
    assert f"http://127.0.0.1:3000/runs/{run_id}" in err
    [logs] = re.findall(r"step output: +(\S+)", err)
    assert run_id in logs and Path(logs).is_dir()
    assert "bad__extract__t__s: failed, retrying: t/s: script s.py exited" in err
    # no line per skipped downstream step: the summary says it once
    assert "Not executing" not in err
    assert len([ln for ln in err.splitlines() if ln.startswith("  ")]) <= 8, err


def test_a_prepare_only_run_says_how_to_approve(tmp_path, pg_url):
    ok = "import json\nprint(json.dumps([{'a': 1}]))\n"
    write_module(tmp_path / "mods" / "shop", module("shop", autoUpload=False), {"s.py": ok})
    proc = dmetl(tmp_path, pg_url, "run", "shop")
    assert proc.returncode == 0, proc.stderr
    assert "shop 0.1.1: succeeded" in proc.stdout
    assert "dmetl approve shop 0.1.1" in proc.stdout


def test_a_killed_dmetl_run_is_failed_by_the_next_one_without_a_daemon(tmp_path, pg_url):
    import signal
    import time

    import dagster as dg

    hang = "import json, os, time\nwhile os.path.exists('hang'):\n    time.sleep(0.2)\n"
    hang += "print(json.dumps([{'a': 1}]))\n"
    folder = write_module(tmp_path / "mods" / "slow", module("slow"), {"s.py": hang})
    (folder / "hang").write_text("")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "DM_POSTGRES_URL": pg_url,
        "DM_MODULES_DIR": str(tmp_path / "mods"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    (tmp_path / "home").mkdir()
    killed = subprocess.Popen([str(BIN / "dmetl"), "run", "slow"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (tmp_path / "home" / "storage").exists():
            time.sleep(0.5)
        with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
            started = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
            while time.time() < deadline and not instance.get_runs(started):
                time.sleep(0.5)
            [run] = instance.get_runs(started)
            killed.send_signal(signal.SIGKILL)
            killed.wait()
            (folder / "hang").unlink()
            proc = dmetl(tmp_path, pg_url, "run", "slow")
            assert proc.returncode == 0, proc.stderr
            assert f"run {run.run_id} was started but its process is gone" in proc.stdout
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    finally:
        (folder / "hang").unlink(missing_ok=True)
        killed.kill()
