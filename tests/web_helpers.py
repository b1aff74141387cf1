"""A real `dmetl serve` on loopback for the web tests, and small HTTP helpers."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.servers import free_port, wait_for_port

LOCATION = {"repositoryLocationName": "datamodule_etl", "repositoryName": "__repository__"}
PROXY_SECRET = "proxy-shared-secret"
NO_DAEMON_INSTANCE = (
    "run_coordinator:\n  module: dagster.core.run_coordinator\n"
    "  class: DefaultRunCoordinator\ntelemetry:\n  enabled: false\n"
)


@dataclass
class Served:
    url: str
    port: int
    home: Path
    log: Path
    env: dict[str, str]

    @property
    def graphql(self) -> str:
        return f"{self.url}/graphql"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def proxy_headers(role: str, user: str | None = None) -> dict[str, str]:
    """What the trusted proxy sends for a user in group `role` (a group named like a role)."""
    return {
        "X-Forwarded-User": user or f"{role}@example.org",
        "X-Forwarded-Email": user or f"{role}@example.org",
        "X-Forwarded-Groups": role,
        "X-DM-Proxy-Secret": PROXY_SECRET,
    }


def serve_env(tmp_path: Path, modules_dir: Path, pg_url: str, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(NO_DAEMON_INSTANCE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DM_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        DM_MODULES_DIR=str(modules_dir),
        DM_POSTGRES_URL=pg_url,
        DM_OUTBOX_ROOT=str(tmp_path / "outbox"),
        DM_STORAGE_ROOT=str(tmp_path / "storage"),
        DM_AUDIT_HMAC_KEY="web-test-audit-key",
        DM_AUDIT_SIGNING_KEY="22" * 32,
        DM_AUDIT_CHECKPOINTS=str(tmp_path / "checkpoints"),
        DM_WEB_SESSION_SECRET="web-test-session-secret",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **extra,
    )
    return env


def _loaded(url: str, headers: dict[str, str]) -> bool:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    try:
        resp = httpx.get(url, params={"query": query}, headers=headers, timeout=10)
        entries = resp.json()["data"]["workspaceOrError"]["locationEntries"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return False
    return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)


@contextlib.contextmanager
def dmetl_serve(
    tmp_path: Path,
    env: dict[str, str],
    ready_headers: dict[str, str] | None = None,
    port: int | None = None,
) -> Iterator[Served]:
    """`dmetl serve --no-daemon` in a subprocess until it answers (and, given `ready_headers`
    of a signed-in user, until the code location has loaded)."""
    port = port or free_port()
    log = tmp_path / "serve.log"
    code = "import sys; from etl_assets.cli import main; sys.exit(main())"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--port", str(port), "--no-daemon"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    served = Served(f"http://127.0.0.1:{port}", port, Path(env["DAGSTER_HOME"]), log, env)
    try:
        if not wait_for_port(port, timeout=120):
            pytest.fail(f"dmetl serve did not start:\n{served.log_text()}")
        deadline = time.monotonic() + 120
        while ready_headers is not None and not _loaded(served.graphql, ready_headers):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"the code location did not load:\n{served.log_text()}")
            time.sleep(0.5)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def gql(served: Served, query: str, variables: dict | None = None, headers: dict | None = None):
    """A same-origin JSON POST, as the UI sends it; returns (status, payload)."""
    resp = httpx.post(
        served.graphql,
        json={"query": query, "variables": variables or {}},
        headers={"Origin": served.url, **(headers or {})},
        timeout=60,
    )
    try:
        return resp.status_code, resp.json()
    except json.JSONDecodeError:
        return resp.status_code, {"text": resp.text}


def docs_images(*parts: str) -> Path:
    """Where the browser tests save the screenshots the docs show: `docs/img/...` when
    DM_DOCS_SCREENSHOTS is set (to refresh them), else a temporary folder, so that running the
    suite leaves the work tree clean."""
    root = Path(__file__).resolve().parent.parent
    if os.environ.get("DM_DOCS_SCREENSHOTS"):
        base = root / "docs" / "img"
    else:
        base = Path(tempfile.gettempdir()) / "dm-docs-screenshots"
    folder = base.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
