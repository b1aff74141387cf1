"""The worker side of bench/sql_sources.py: one read in a fresh interpreter, with the peak
resident memory of its process tree sampled from /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bench.sql_fixtures import canon

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants now (from /proc)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE_MB
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


class TreePeak(threading.Thread):
    """Samples this process tree's resident memory every 5 ms until stopped; keeps the peak
    (ru_maxrss cannot: a forked child inherits its parent's high-water mark)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = tree_rss_mb(os.getpid())
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.005):
            self.peak = max(self.peak, tree_rss_mb(os.getpid()))

    def stop(self) -> float:
        self.done.set()
        self.join()
        return max(self.peak, tree_rss_mb(os.getpid()))


def _odbc_string(url: str) -> str:
    p = urlsplit(url)
    return (
        f"Driver={{MariaDB Unicode}};Server={p.hostname};Port={p.port or 3306};"
        f"User={unquote(p.username or '')};Password={unquote(p.password or '')};"
        f"Database={p.path.lstrip('/')};"
    )


def _reader(engine: str, method: str):
    """A function url, query -> Arrow table (or None for the CLI). Each branch imports only its
    own library, before the baseline is taken, so a worker's memory is that library's alone."""
    if method == "copy_csv":
        import psycopg

        from etl_assets.extract.postgres import query_to_arrow

        def read(url, query):
            with psycopg.connect(url) as conn:
                conn.read_only = True
                return query_to_arrow(conn, query, "bench")

    elif method == "connectorx":
        import connectorx as cx

        def read(url, query):
            return cx.read_sql(url, query, return_type="arrow")

    elif method == "adbc":
        import adbc_driver_postgresql.dbapi as adbc

        def read(url, query):
            with adbc.connect(url) as conn, conn.cursor() as cur:
                cur.execute(query)
                return cur.fetch_arrow_table()

    elif method == "adbc_odbc":
        import adbcbridge

        def read(url, query):
            with adbcbridge.connect(uri=_odbc_string(url)) as conn, conn.cursor() as cur:
                cur.execute(query)
                return cur.fetch_arrow_table()

    elif method == "mariadb_cli":

        def read(url, query):
            p = urlsplit(url)
            cmd = ["mariadb", "--batch", "--quick", "--skip-column-names",
                   f"--host={p.hostname}", f"--port={p.port or 3306}",
                   f"--user={unquote(p.username or 'root')}", p.path.lstrip("/"), "-e", query]  # fmt: skip
            env = {"PATH": "/usr/bin:/bin", "MYSQL_PWD": unquote(p.password or "")}
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)

    else:  # sql_source: the module's `sql` connector (connectorx in a child process)
        from etl_assets.extract.sql import read_query

        def read(url, query):
            return read_query(engine_url_kind(url), url, query, where="bench")

    return read


def engine_url_kind(url: str) -> str:
    return "postgres" if url.startswith("postgres") else "mysql"


def _read_one(read, url: str, query: str, values: bool) -> dict:
    sampler = TreePeak()
    baseline = sampler.peak
    sampler.start()
    start = time.perf_counter()
    try:
        table = read(url, query)
    except BaseException as exc:  # noqa: BLE001 - a Rust panic is a BaseException
        seconds = round(time.perf_counter() - start, 3)
        sampler.stop()
        return {"error": type(exc).__name__, "message": str(exc)[:2000], "seconds": seconds}
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "baseline_mb": baseline, "peak_mb": sampler.stop()}
    if table is not None:
        out["rows"] = table.num_rows
        out["arrow_mb"] = table.nbytes / 2**20
        if values:
            out["columns"] = {
                c: [canon(v) for v in table[c].to_pylist()] for c in table.schema.names
            }
            out["types"] = {f.name: str(f.type) for f in table.schema}
    return out


def worker(method: str) -> None:
    """Read the request on stdin, answer with figures (or the error) as JSON on stdout: one
    query, or a dict of named queries read one after the other."""
    req = json.loads(sys.stdin.read())
    read = _reader(req["engine"], method)
    if isinstance(req["query"], dict):
        out = {k: _read_one(read, req["url"], q, True) for k, q in req["query"].items()}
    else:
        out = _read_one(read, req["url"], req["query"], req.get("values", False))
    print(json.dumps(out))
