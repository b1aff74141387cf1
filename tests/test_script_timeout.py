"""Hung scripts (issue 10.5): a script runs in its own process group; on timeout the whole group
is ended (SIGTERM, then SIGKILL), the error names the script and the timeout, and the step tries
a timed-out script once more at most, whatever the module's retries."""

from __future__ import annotations

import dagster as dg
import psutil
import pytest

from etl_assets.errors import ExtractionError
from etl_assets.extract.entry import extract_entry
from etl_assets.metadata import CollectionEntry
from tests.helpers import CONTEXT, run_version, write_module

# starts a child that ignores SIGTERM, records both pids, then hangs
HANGS = """import os, signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
open("pids", "w").write(f"{os.getpid()} {child.pid}")
signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_hung_script_and_its_children_are_ended_at_the_timeout(tmp_path):
    (tmp_path / "hang.py").write_text(HANGS)
    entry = CollectionEntry.model_validate(
        {
            "table": "t",
            "source": "src",
            "extract": {"type": "script", "path": "hang.py", "timeoutSeconds": 1.5},
        }
    )
    with pytest.raises(ExtractionError) as info:
        extract_entry(entry, tmp_path)
    message = str(info.value)
    assert "script hang.py" in message and "timeoutSeconds=1.5 s" in message
    assert info.value.retryable and info.value.retry_limit == 1
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids), "the script or its child outlived the timeout"


def test_default_script_timeout_is_minutes():
    entry = CollectionEntry.model_validate(
        {"table": "t", "source": "s", "extract": {"type": "script", "path": "x.py"}}
    )
    assert entry.extract.timeoutSeconds == 120


def test_a_timed_out_script_is_retried_once_not_per_policy(tmp_path, resources, dagster_home):
    doc = {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": "hung",
        "version": "1.0.0",
        "retry": {"maxRetries": 3, "delaySeconds": 0},
        "tables": [{"name": "t", "columns": [{"name": "a", "dataType": "integer"}]}],
        "collection": [
            {
                "table": "t",
                "source": "s",
                "extract": {"type": "script", "path": "hang.py", "timeoutSeconds": 0.5},
            }
        ],
    }
    folder = write_module(tmp_path / "hung", doc, {"hang.py": "import time\ntime.sleep(60)\n"})
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        result = run_version(folder, "1.0.1", resources, instance)
    assert not result.success
    restarts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert len(restarts) == 1
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "timeoutSeconds=0.5 s" in failure.step_failure_data.error.message
