"""Shared fixtures: a real PostgreSQL (the machine's, else an embedded one), temp instances."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import psycopg
import pytest

from resources import OutboxResource, ParquetIOManager, PostgresResource
from resources.deployment import GovernanceResource, PrivacyResource, SecretsResource
from resources.io_manager import IO_MANAGER_KEY
from resources.postgres import embedded_url
from tests.helpers import scratch_database

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "datamodules"
MACHINE_PG = os.environ.get("DM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory) -> str:
    """The machine's PostgreSQL when it answers, else an embedded server (pgserver)."""
    if _answers(MACHINE_PG):
        return MACHINE_PG
    return embedded_url(tmp_path_factory.mktemp("pgdata"))


@pytest.fixture
def pg_url(pg_server_url: str, request) -> str:
    """A fresh database per test, dropped afterwards (tests never see each other's tables)."""
    return scratch_database(request, pg_server_url, "dmtest")


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop an embedded server a test started (pgserver leaves it running for later reuse)."""
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGTERM)  # "smart" shutdown
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
    except ProcessLookupError:
        pass


@pytest.fixture
def dagster_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def modules_dir(tmp_path) -> Path:
    """A copy of the example modules that a test may change."""
    target = tmp_path / "datamodules"
    shutil.copytree(EXAMPLES, target)
    return target


def local_resources(tmp_path: Path, pg_url: str) -> dict:
    """The resources a local deployment would have, in `tmp_path`, on the given database."""
    return {
        "postgres": PostgresResource(url=pg_url),
        "outbox": OutboxResource(root=str(tmp_path / "outbox")),
        "secrets": SecretsResource(generate_missing_keys_in=str(tmp_path / "secrets")),
        "privacy": PrivacyResource(),
        "governance": GovernanceResource(),
        IO_MANAGER_KEY: ParquetIOManager(base_dir=str(tmp_path / "storage")),
    }


@pytest.fixture
def resources(tmp_path, pg_url):
    return local_resources(tmp_path, pg_url)
