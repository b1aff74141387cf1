"""What the benchmarks share: a fresh PostgreSQL database per run, and peak RSS."""

from __future__ import annotations

import os
import resource
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from resources.postgres import embedded_url

SERVER = os.environ.get("DM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@contextmanager
def fresh_database(server: str = SERVER) -> Iterator[str]:
    """The URL of a new, empty database on `server` (else on an embedded one), dropped
    afterwards: every run measures from the same starting point and leaves nothing behind."""
    with tempfile.TemporaryDirectory(prefix="dm_bench_pg_") as tmp:
        if not _answers(server):
            server = embedded_url(Path(tmp) / "pgdata")
        name = f"dmbench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
        finally:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def peak_rss_mb() -> float:
    """This process's peak resident set size."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
