"""Benchmark: how long a reader of `<schema>.<table>` waits while a new version is uploaded.

`python bench/swap.py` uploads a 2M-row version (`--quick`: 200k) while a reader queries the
view in a loop on its own connection, twice: the way uploads used to work (one transaction that
dropped the view, loaded the table with COPY and created the view again, reproduced here since
the sink no longer does it) and the way they work now (`etl_assets.publish.postgres.publish`:
load in a staging schema, then a short swap with CREATE OR REPLACE VIEW). The reader's query
(`SELECT 1 FROM view LIMIT 1`) costs almost nothing, so its longest latency is the time it was
blocked. The last line is one JSON object with both figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from bench.common import fresh_database  # noqa: E402
from etl_assets.publish.pg_copy import copy_arrow, create_table, to_arrow  # noqa: E402
from etl_assets.publish.postgres import publish, version_table  # noqa: E402


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "value": rng.random(n),
            "label": pd.Series(rng.integers(0, 10_000, n)).astype(str),
        }
    )


def old_publish(conn: psycopg.Connection, schema: str, version: str, df: pd.DataFrame) -> float:
    """The upload as it was: DROP VIEW, load, CREATE VIEW, all in one transaction."""
    start = time.perf_counter()
    arrow = to_arrow(df)
    vt = sql.Identifier(schema, version_table("t", version))
    view = sql.Identifier(schema, "t")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(view))
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(vt))
        create_table(cur, vt, arrow.schema)
        copy_arrow(cur, vt, arrow)
        cur.execute(sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(view, vt))
    return time.perf_counter() - start


def new_publish(conn: psycopg.Connection, schema: str, version: str, df: pd.DataFrame):
    return publish(
        conn,
        module=schema,
        version=version,
        schema=schema,
        tables={"t": df},
        quarantine=None,
        metadata_hash="bench",
    )


def reader(url: str, relation: str, ready, stop, out) -> None:
    """In its own process (so the uploader's CPU work does not delay it): query until told to
    stop, then send (start, end) of every query; perf_counter is the system's monotonic clock."""
    samples = []
    with psycopg.connect(url, autocommit=True) as conn:
        query = f"SELECT 1 FROM {relation} LIMIT 1"
        while not stop.is_set():
            start = time.perf_counter()
            conn.execute(query).fetchall()
            samples.append((start, time.perf_counter()))
            ready.set()
    out.send(samples)


def measure(url: str, way: str, rows: int) -> dict[str, float]:
    schema = f"bench_swap_{way}"
    with psycopg.connect(url, autocommit=True) as conn:
        first = frame(rows, 1)
        (old_publish if way == "old" else new_publish)(conn, schema, "1.0.1", first)
        df = frame(rows, 2)
        ctx = mp.get_context("spawn")
        ready, stop, (receive, send) = ctx.Event(), ctx.Event(), ctx.Pipe(duplex=False)
        process = ctx.Process(target=reader, args=(url, f"{schema}.t", ready, stop, send))
        process.start()
        if not ready.wait(timeout=120):
            raise RuntimeError("the reader process never queried the view")
        time.sleep(0.3)
        start = time.perf_counter()
        if way == "old":
            upload = old_publish(conn, schema, "1.0.2", df)
            swap = upload  # the whole transaction held the view
        else:
            result = new_publish(conn, schema, "1.0.2", df)
            upload, swap = time.perf_counter() - start, result.swap_seconds
        end = time.perf_counter()
        time.sleep(0.3)
        stop.set()
        samples = receive.recv()
        process.join()
    during = [b - a for a, b in samples if a < end and b > start]
    figures = {
        "upload_s": round(upload, 3),
        "swap_s": round(swap, 4),
        "reader_max_wait_s": round(max(during), 4),
        "reader_median_s": round(statistics.median(b - a for a, b in samples), 5),
        "reader_queries_during_upload": len(during),
    }
    print(
        f"{way:>3} way: upload {figures['upload_s']:.2f} s, view held {figures['swap_s']:.3f} s;"
        f" reader max wait {figures['reader_max_wait_s']:.3f} s"
        f" (median query {figures['reader_median_s'] * 1000:.2f} ms,"
        f" {len(during)} queries during the upload)",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k rows instead of 2M")
    args = parser.parse_args()
    rows = 200_000 if args.quick else 2_000_000
    with fresh_database() as url:
        print(f"{rows:,} rows per version; a reader queries the view in a loop", flush=True)
        old = measure(url, "old", rows)
        new = measure(url, "new", rows)
    print(
        json.dumps(
            {
                "rows": rows,
                "old_reader_max_wait_s": old["reader_max_wait_s"],
                "new_reader_max_wait_s": new["reader_max_wait_s"],
                "new_swap_s": new["swap_s"],
                "old_upload_s": old["upload_s"],
                "new_upload_s": new["upload_s"],
                "wait_ratio_old_vs_new": round(
                    old["reader_max_wait_s"] / max(new["reader_max_wait_s"], 1e-6), 1
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
