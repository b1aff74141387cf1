"""The run queue of the Compose deployment, for real: its dagster.yaml (PostgreSQL storage, queued
coordinator, DefaultRunLauncher), a code-location gRPC server, the daemon and the webserver on
loopback. Twenty versions of one module launched at once all succeed, and never more of them run
at the same time than the per-module limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import pytest
import yaml

from etl_assets.metadata.loader import load_module
from etl_assets.orchestration.versions import allocate
from resources.postgres import PostgresResource
from tests.conftest import ROOT
from tests.deploy_support import DEPLOY, load_yaml, pg_url_of
from tests.helpers import CONTEXT, write_module
from tests.servers import free_port, wait_for_port

pytestmark = pytest.mark.integration
VERSIONS = 20
LOCATION = {"repositoryLocationName": "datamodule_etl", "repositoryName": "__repository__"}
BIN = Path(sys.executable).parent
TINY = {
    "@context": CONTEXT,
    "@type": "DataModule",
    "name": "tiny",
    "version": "1.0.0",
    "retry": {"maxRetries": 0},
    "execution": {"executor": "in_process"},
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
        {"table": "items", "source": "slow", "extract": {"type": "script", "path": "slow.py"}}
    ],
}
# a source that takes a few seconds, so that runs let in together are seen running together
SLOW_SOURCE = """import json, time
time.sleep(3)
print(json.dumps([{"item_id": 1, "label": "a"}, {"item_id": 2, "label": "b"}]))
"""


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        pytest.fail(f"GraphQL answered {exc.code}: {exc.read().decode()[:2000]}")
    assert "errors" not in payload, payload["errors"]
    return payload["data"]


def wait_until_loaded(url: str, timeout: float = 120) -> None:
    """The webserver answers before it has loaded the code location from the gRPC server."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    deadline = time.time() + timeout
    while time.time() < deadline:
        entries = graphql(url, query)["workspaceOrError"]["locationEntries"]
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            return
        time.sleep(0.5)
    pytest.fail(f"the code location did not load: {entries}")


def module_limit(config: dict) -> int:
    [limit] = [
        lim
        for lim in config["run_coordinator"]["config"]["tag_concurrency_limits"]
        if lim["key"] == "dm/module"
    ]
    return limit["limit"]


def max_overlap(records: list[dg.RunRecord]) -> int:
    """The most runs that were STARTED at one moment, from their recorded start and end."""
    edges = sorted(
        [(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records],
        key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
    )
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def start(stack: ExitStack, args: list[str], env: dict, log: Path) -> subprocess.Popen:
    out = stack.enter_context(open(log, "w"))  # noqa: SIM115 - closed by the stack
    proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    stack.callback(_stop, proc)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def node(tmp_path, pg_url, monkeypatch):
    """The Compose node's Dagster processes on loopback; yields (graphql url, instance, config)."""
    home = tmp_path / "home"
    home.mkdir()
    config = load_yaml(DEPLOY / "dagster.compose.yaml")
    # the one change: dequeue every second instead of every 5 s, to keep the test short
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    grpc_port, web_port = free_port(), free_port()
    (home / "workspace.yaml").write_text(
        yaml.safe_dump(
            {"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": grpc_port,
                                            "location_name": LOCATION["repositoryLocationName"]}}]}
        )
    )  # fmt: skip
    mods = tmp_path / "mods"
    write_module(mods / "tiny", TINY, {"slow.py": SLOW_SOURCE})
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": pg_url_of(pg_url),
        "DM_POSTGRES_URL": pg_url,
        "DM_MODULES_DIR": str(mods),
        "DM_OUTBOX_ROOT": str(tmp_path / "outbox"),
        "DM_STORAGE_ROOT": str(tmp_path / "storage"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
        monkeypatch.setenv(key, env[key])
    workspace = str(home / "workspace.yaml")
    with ExitStack() as stack:
        start(stack, [str(BIN / "dagster"), "api", "grpc", "-h", "127.0.0.1", "-p",
                      str(grpc_port), "-m", "etl_assets.definitions", "-a", "defs"],
              env, tmp_path / "grpc.log")  # fmt: skip
        assert wait_for_port(grpc_port, timeout=120), (tmp_path / "grpc.log").read_text()
        start(stack, [str(BIN / "dagster-daemon"), "run", "-w", workspace], env,
              tmp_path / "daemon.log")  # fmt: skip
        start(stack, [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
                      "-w", workspace], env, tmp_path / "webserver.log")  # fmt: skip
        assert wait_for_port(web_port, timeout=120), (tmp_path / "webserver.log").read_text()
        url = f"http://127.0.0.1:{web_port}/graphql"
        wait_until_loaded(url)
        instance = stack.enter_context(dg.DagsterInstance.get())
        yield url, instance, config, mods


def test_twenty_versions_at_once_stay_within_the_module_limit(node, pg_url):
    url, instance, config, mods = node
    limit = module_limit(config)
    loaded = load_module(mods / "tiny")
    postgres = PostgresResource(url=pg_url)
    versions = [allocate(instance, postgres, loaded, trigger="test") for _ in range(VERSIONS)]
    assert len(set(versions)) == VERSIONS

    params = [
        {
            "selector": {**LOCATION, "jobName": "tiny_prepare_job"},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": v}]},
        }
        for v in versions
    ]
    launched = graphql(
        url,
        """mutation($params: [ExecutionParams!]!) {
             launchMultipleRuns(executionParamsList: $params) {
               __typename
               ... on LaunchMultipleRunsResult { launchMultipleRunsResult {
                 __typename ... on LaunchRunSuccess { run { runId } }
                 ... on PythonError { message } } } } }""",
        {"params": params},
    )["launchMultipleRuns"]
    results = launched["launchMultipleRunsResult"]
    assert [r["__typename"] for r in results] == ["LaunchRunSuccess"] * VERSIONS, results
    run_ids = [r["run"]["runId"] for r in results]

    in_progress = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    most_seen, deadline = 0, time.time() + 900
    while time.time() < deadline:
        records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
        most_seen = max(most_seen, sum(r.dagster_run.status in in_progress for r in records))
        if all(r.dagster_run.is_finished for r in records):
            break
        time.sleep(0.25)
    records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
    statuses = {r.dagster_run.run_id: r.dagster_run.status.value for r in records}
    assert list(statuses.values()) == ["SUCCESS"] * VERSIONS, statuses
    assert {r.dagster_run.tags["dm/module"] for r in records} == {"tiny"}
    # never more than the limit at once, and the limit (not a serial queue) held them back
    assert most_seen <= limit
    assert max_overlap(records) <= limit
    assert max_overlap(records) == limit
    # the module's metadata chose the in-process executor for these launched runs
    messages = [e.message for e in instance.all_logs(run_ids[0])]
    assert any("in process" in (m or "") for m in messages), messages[:20]
