"""Benchmark: loading into PostgreSQL through our sink vs `psql \\copy` (CSV) vs `to_sql`.

`python bench/load.py` loads 1M and 10M narrow rows and a wide table; `--quick` loads 1M narrow
rows only. The same data goes through our sink (`etl_assets.sinks.postgres.publish`, binary COPY
from Arrow in one transaction), through `psql \\copy` of the same data written as CSV (the
practical limit; writing the CSV is not timed), and through `pandas.DataFrame.to_sql` on a 100k
sample (to_sql on millions of rows takes minutes; its rows/s is measured on the sample).
The last line is one JSON object with the figures of the largest narrow size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from bench.common import fresh_database, peak_rss_mb  # noqa: E402
from etl_assets import registry  # noqa: E402
from etl_assets.publish.pg_copy import create_table, to_arrow  # noqa: E402
from etl_assets.publish.postgres import publish  # noqa: E402

URL = ""  # a fresh database per run, set by main()
TO_SQL_SAMPLE = 100_000
SCHEMA = "dm_bench_load"


def narrow(n: int, seed: int = 0) -> pa.Table:
    """id, a float, a short text (some null, some empty), a flag and a date."""
    rng = np.random.default_rng(seed)
    ids = pa.array(np.arange(n, dtype=np.int64))
    text = pc.binary_join_element_wise("name-", pc.cast(ids, pa.string()), "")
    mask = rng.random(n)
    text = pc.if_else(pa.array(mask < 0.05), pa.scalar(None, pa.string()), text)
    text = pc.if_else(pa.array((mask >= 0.05) & (mask < 0.1)), pa.scalar("", pa.string()), text)
    days = pa.array(rng.integers(0, 20_000, n).astype("int32")).cast(pa.date32())
    return pa.table(
        {
            "id": ids,
            "amount": pa.array(rng.normal(100, 25, n)),
            "name": text,
            "flag": pa.array(rng.random(n) < 0.5),
            "day": days,
        }
    )


def wide(n: int, cols: int = 40, seed: int = 1) -> pa.Table:
    """`cols` columns: a third integers, a third floats, a third short text."""
    rng = np.random.default_rng(seed)
    data = {}
    for i in range(cols):
        kind = i % 3
        if kind == 0:
            data[f"i{i}"] = pa.array(rng.integers(0, 1_000_000, n))
        elif kind == 1:
            data[f"f{i}"] = pa.array(rng.random(n))
        else:
            data[f"s{i}"] = pc.cast(pa.array(rng.integers(0, 10_000, n)), pa.string())
    return pa.table(data)


def reset(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    registry.ensure(conn)
    conn.execute("DELETE FROM dm_registry.versions WHERE module = 'bench_load'")


def ours(conn: psycopg.Connection, table: pa.Table, name: str) -> float:
    reset(conn)
    start = time.perf_counter()
    publish(
        conn,
        module="bench_load",
        version="1.0.0",
        schema=SCHEMA,
        tables={name: table},
        quarantine=None,
        metadata_hash="bench",
    )
    elapsed = time.perf_counter() - start
    n = conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, name))
    ).fetchone()[0]
    assert n == table.num_rows, (n, table.num_rows)
    return elapsed


def psql_copy(conn: psycopg.Connection, table: pa.Table, name: str, folder: Path) -> float:
    reset(conn)
    path = folder / f"{name}.csv"
    pacsv.write_csv(
        table, path, write_options=pacsv.WriteOptions(include_header=False, quoting_style="needed")
    )
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    with conn.cursor() as cur:
        create_table(cur, sql.Identifier(SCHEMA, name), to_arrow(table).schema)
    cols = ", ".join(f'"{c}"' for c in table.schema.names)
    cmd = ["psql", URL, "-v", "ON_ERROR_STOP=1", "-q", "-c",
           f"\\copy {SCHEMA}.{name} ({cols}) FROM '{path}' (FORMAT csv)"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def to_sql(table: pa.Table, name: str) -> tuple[float, int]:
    """`DataFrame.to_sql` (SQLAlchemy, pandas' default inserts) on a sample; (seconds, rows)."""
    from sqlalchemy import create_engine

    sample = table.slice(0, min(TO_SQL_SAMPLE, table.num_rows)).to_pandas()
    engine = create_engine(URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with psycopg.connect(URL, autocommit=True) as conn:
        reset(conn)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    start = time.perf_counter()
    sample.to_sql(name, engine, schema=SCHEMA, index=False, if_exists="replace", chunksize=10_000)
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed, len(sample)


def run(label: str, table: pa.Table, folder: Path, with_to_sql: bool) -> dict:
    rows = table.num_rows
    with psycopg.connect(URL, autocommit=True) as conn:
        t_psql = psql_copy(conn, table, "bench", folder)
        t_ours = ours(conn, table, "bench")
        reset(conn)
    result = {
        "label": label,
        "rows": rows,
        "ours_rows_per_s": round(rows / t_ours),
        "psql_copy_rows_per_s": round(rows / t_psql),
    }
    if with_to_sql:
        t_sql, n_sql = to_sql(table, "bench_to_sql")
        result["to_sql_rows_per_s"] = round(n_sql / t_sql)
        result["to_sql_sample_rows"] = n_sql
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    line = (
        f"{label:>14}: {rows:>11,} rows  ours {result['ours_rows_per_s']:>10,} rows/s"
        f" ({t_ours:6.2f}s)  psql \\copy {result['psql_copy_rows_per_s']:>10,} rows/s"
        f" ({t_psql:6.2f}s)"
    )
    if with_to_sql:
        line += f"  to_sql {result['to_sql_rows_per_s']:>8,} rows/s (on a {n_sql:,}-row sample)"
    print(line + f"  peak RSS {result['peak_rss_mb']:,.0f} MB", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M narrow rows only")
    args = parser.parse_args()
    sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    results = []
    global URL
    with fresh_database() as URL, tempfile.TemporaryDirectory(prefix="dm_bench_load_") as tmp:
        folder = Path(tmp)
        if not args.quick:
            results.append(run("wide 40 cols", wide(1_000_000), folder, with_to_sql=False))
        for n in sizes:
            results.append(run(f"narrow {n // 1_000_000}M", narrow(n), folder, with_to_sql=True))
    largest = results[-1]
    print(
        f"to_sql rows/s measured on a {largest['to_sql_sample_rows']:,}-row sample"
        " (pandas inserts; the full size would take minutes)"
    )
    summary = {
        "rows": largest["rows"],
        "ours_rows_per_s": largest["ours_rows_per_s"],
        "psql_copy_rows_per_s": largest["psql_copy_rows_per_s"],
        "to_sql_rows_per_s": largest["to_sql_rows_per_s"],
        "ratio_vs_psql_copy": round(
            largest["ours_rows_per_s"] / largest["psql_copy_rows_per_s"], 2
        ),
        "ratio_vs_to_sql": round(largest["ours_rows_per_s"] / largest["to_sql_rows_per_s"], 1),
        "peak_rss_mb": largest["peak_rss_mb"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
