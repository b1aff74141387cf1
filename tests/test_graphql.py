"""Integration through Dagster's GraphQL API: a real dagster-webserver on loopback serves the code
location; we list the asset graph, add a version partition and launch the module's job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT
from tests.servers import free_port, wait_for_port

pytestmark = pytest.mark.integration
LOCATION = {"repositoryLocationName": "datamodule_etl", "repositoryName": "__repository__"}


def gql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        payload = json.loads(resp.read())
    assert "errors" not in payload, payload["errors"]
    return payload["data"]


@pytest.fixture
def webserver(tmp_path, modules_dir, pg_url):
    home = tmp_path / "home"
    home.mkdir()
    # no daemon here: launch runs straight from the webserver instead of queueing them
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: DefaultRunCoordinator\ntelemetry:\n  enabled: false\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DM_MODULES_DIR": str(modules_dir),
        "DM_POSTGRES_URL": pg_url,
        "DM_OUTBOX_ROOT": str(tmp_path / "outbox"),
        "DM_STORAGE_ROOT": str(tmp_path / "storage"),
    }
    log = open(tmp_path / "webserver.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-w", "workspace.yaml",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        if not wait_for_port(port, timeout=90):
            pytest.fail(
                "dagster-webserver did not start:\n" + (tmp_path / "webserver.log").read_text()
            )
        url = f"http://127.0.0.1:{port}/graphql"
        deadline = time.time() + 90
        while time.time() < deadline:  # the code location loads after the port opens
            data = gql(url, "{ workspaceOrError { ... on Workspace { locationEntries {"
                       " name loadStatus } } } }")  # fmt: skip
            entries = data["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                break
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_graphql_lists_the_graph_and_runs_a_version(webserver, pg_url):
    nodes = gql(
        webserver,
        "{ assetNodes { assetKey { path } groupName partitionDefinition { name } } }",
    )["assetNodes"]
    clinic = [n for n in nodes if n["groupName"] == "clinic"]
    assert {tuple(n["assetKey"]["path"][:2]) for n in clinic} >= {
        ("clinic", "extract"),
        ("clinic", "clean"),
        ("clinic", "anonymize"),
        ("clinic", "outbox"),
        ("clinic", "upload"),
    }
    assert all(n["partitionDefinition"]["name"] == "clinic_versions" for n in clinic)

    added = gql(
        webserver,
        """mutation($sel: RepositorySelector!) {
             addDynamicPartition(repositorySelector: $sel, partitionsDefName: "clinic_versions",
                                 partitionKey: "1.0.1") { __typename } }""",
        {"sel": LOCATION},
    )
    assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess"

    launched = gql(
        webserver,
        """mutation($params: ExecutionParams!) {
             launchRun(executionParams: $params) {
               __typename ... on LaunchRunSuccess { run { runId } }
               ... on PythonError { message } ... on InvalidSubsetError { message } } }""",
        {
            "params": {
                "selector": {**LOCATION, "jobName": "clinic_job"},
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "1.0.1"}]},
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    status = None
    deadline = time.time() + 120
    while time.time() < deadline:
        status = gql(
            webserver, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
            {"id": run_id},
        )["runOrError"]["status"]  # fmt: skip
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS"

    import psycopg

    with psycopg.connect(pg_url) as conn:
        versions = conn.execute("SELECT version FROM dm_registry.versions").fetchall()
    assert versions == [("1.0.1",)]
