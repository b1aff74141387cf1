"""The anonymize stage of a record-local table: the per-batch path against the whole-table path.

The input is the end-to-end benchmark's `orders` table as the clean stage stages it (12 typed
columns and `_dm_source`; `customer_id` pseudonymized and a foreign key of `customers`, no
privacy model), written with `write_staged` in batches of `DM_BATCH_ROWS` (131072). The parent's
published keys are the pseudonyms of 98% of the customers (the other 2% suppressed), so about 2%
of the orders are orphans. Both paths read the staged table and write their output as the asset
does (zstd Parquet, fsynced): the batched path as a staged table, the whole one as one file.

``python bench/anonymize_batches.py`` runs 1M rows; ``--rows N`` another size; ``--quick``
100k rows. Each path runs ``--reps`` times (default 2); the last line is one JSON object with
the best wall and CPU time of each, the ratios, and whether both paths published identical tables.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.e2e_data import CATEGORIES, CHANNELS, PRODUCTS, STATUSES, write_module  # noqa: E402
from etl_assets.anonymize import operations as ops  # noqa: E402
from etl_assets.anonymize.batches import anonymize_staged, batch_local  # noqa: E402
from etl_assets.anonymize.table import anonymize_for_module, drop_orphans  # noqa: E402
from etl_assets.metadata.loader import load_module  # noqa: E402
from resources.staged import DEFAULT_BATCH_ROWS, StagedTable, StagedWriter, write_staged  # noqa: E402
from resources.stores import write_parquet_atomic  # noqa: E402

KEY = b"bench-pseudonym-key-0123456789ab"
VERSION = "1.0.0"


def clean_orders(n: int, n_customers: int, seed: int = 10) -> pa.Table:
    """`orders` as the clean stage types it (defects gone: nulls where a value was dropped)."""
    rng = np.random.default_rng(seed)
    days = rng.integers(19_000, 20_400, n).astype(np.int32)
    return pa.table(
        {
            "order_id": pa.array(np.arange(1, n + 1), pa.int64()),
            "customer_id": pa.array(rng.integers(1, n_customers + 1, n), pa.int64()),
            "order_date": pa.array(days, pa.int32()).cast(pa.date32()),
            "amount": pa.array(np.round(rng.gamma(2.0, 40.0, n), 2), pa.float64()),
            "quantity": pa.array(rng.integers(1, 20, n), pa.int64()),
            "product": pa.array(rng.choice(PRODUCTS, n), pa.string()),
            "category": pa.array(rng.choice(CATEGORIES, n), pa.string()),
            "channel": pa.array(rng.choice(CHANNELS, n), pa.string()),
            "status": pa.array(rng.choice(STATUSES, n), pa.string()),
            "discount": pa.array(np.round(rng.random(n) * 0.3, 2), pa.float64()),
            "shipping_postcode": pa.array(rng.integers(10_000, 99_999, n).astype(str)),
            "notes": pa.array(np.where(rng.random(n) < 0.01, "call before", ""), pa.string()),
            "_dm_source": pa.array(np.full(n, "csv"), pa.string()),
        }
    )


def parent_keys(n_customers: int) -> dict[str, pd.DataFrame]:
    """The customers' published keys: pseudonyms of all but every 50th customer."""
    ids = np.arange(1, n_customers + 1)
    ids = pd.Series(ids[ids % 50 != 0], dtype="int64[pyarrow]")
    keys = ops.pseudonymize(ids, KEY).astype(pd.ArrowDtype(pa.string()))
    return {"customers": pd.DataFrame({"customer_id": keys})}


def whole_table(clean: StagedTable, table, loaded, parents, out: Path) -> tuple[int, int]:
    """The whole-table path as the asset runs it: read, anonymize, drop orphans, and store the
    table as its IO manager does (zstd Parquet, fsynced, renamed into place)."""
    frame = clean.to_pandas()
    result = anonymize_for_module(frame, table, loaded, VERSION, KEY)
    tables, orphans = drop_orphans(result.tables, table, parents, VERSION)
    write_parquet_atomic(tables[table.name], out, base=out.parent)
    return len(tables[table.name]), len(orphans)


def per_batch(clean: StagedTable, table, loaded, parents, out: Path) -> tuple[int, int]:
    with StagedWriter(out) as writer:
        result = anonymize_staged(clean, table, loaded, VERSION, KEY, parents, writer)
    return result.staged.num_rows, len(result.orphans)


def timed(fn, reps: int) -> tuple[list[float], list[float], object]:
    """Wall and CPU seconds of each run (CPU time is the steadier figure on a loaded machine)."""
    times, cpu, last = [], [], None
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        last = fn()
        times.append(round(time.perf_counter() - start, 3))
        cpu.append(round(time.process_time() - start_cpu, 3))
    return times, cpu, last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="100k rows")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--only", choices=["batch", "whole"], default=None)
    args = ap.parse_args()
    n = 100_000 if args.quick else args.rows
    n_customers = max(n // 10, 10)
    tmp = Path(tempfile.mkdtemp(prefix="dm_bench_anon_"))
    try:
        (tmp / "data").mkdir()
        for name in ("customers", "orders"):  # the metadata names them; nothing reads them
            (tmp / "data" / f"{name}.csv").touch()
        folder = write_module(tmp / "bench", n, full=True, data=tmp / "data")
        loaded = load_module(folder)
        table = loaded.model.table("orders")
        assert batch_local(table), "the orders table must take the per-batch path"
        data = clean_orders(n, n_customers).to_batches(max_chunksize=DEFAULT_BATCH_ROWS)
        clean = write_staged(tmp / "clean.staged", data)
        parents = parent_keys(n_customers)
        figures: dict[str, object] = {"rows": n, "batch_rows": clean.batch_rows}
        runs = {"batch": (per_batch, tmp / "batch.staged"), "whole": (whole_table, tmp / "w.pq")}
        for name, (fn, out) in runs.items():
            if args.only in (None, name):
                run = partial(fn, clean, table, loaded, parents, out)
                times, cpu, counts = timed(run, args.reps)
                figures[f"{name}_seconds"] = min(times)
                figures[f"{name}_runs"] = times
                figures[f"{name}_cpu_runs"] = cpu
                figures[f"{name}_published_orphans"] = list(counts)
                print(
                    f"{name:>5}: {times} s (CPU {cpu} s), published/orphans {counts}",
                    file=sys.stderr,
                )
        if args.only is None:
            figures["batch_over_whole"] = round(
                figures["batch_seconds"] / figures["whole_seconds"], 3
            )
            figures["batch_over_whole_cpu"] = round(
                min(figures["batch_cpu_runs"]) / min(figures["whole_cpu_runs"]), 3
            )
            batched = StagedTable.open(tmp / "batch.staged").read()
            whole = pq.read_table(tmp / "w.pq")
            figures["identical"] = batched.cast(whole.schema).equals(whole)
        # the process's peak (the generated input included): per path with --only
        figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        figures["load_1min"] = round(os.getloadavg()[0], 2)
        print(json.dumps(figures))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
