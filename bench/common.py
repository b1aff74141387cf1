"""What the benchmarks share: a fresh PostgreSQL or MariaDB/MySQL database per run, peak RSS."""

from __future__ import annotations

import os
import resource
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
import pymysql

from resources.postgres import embedded_url

SERVER = os.environ.get("DM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_SERVER = os.environ.get("DM_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


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


def mysql_connect(url: str, database: str | None = None) -> pymysql.connections.Connection:
    """A PyMySQL connection (autocommit, utf8mb4) to the server of a mysql:// URL."""
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database if database is not None else (parts.path.lstrip("/") or None),
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=5,
    )


@contextmanager
def fresh_mysql_database(server: str = MYSQL_SERVER) -> Iterator[str]:
    """The URL of a new, empty MariaDB/MySQL database on `server`, dropped afterwards (there is
    no embedded fallback: the benchmark needs a real server)."""
    name = f"dmbench_{uuid.uuid4().hex[:10]}"
    with mysql_connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with mysql_connect(server) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def peak_rss_mb() -> float:
    """This process's peak resident set size."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
