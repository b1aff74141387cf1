"""Benchmark of the field rules engine (etl_assets.rules) against the Parquet read+write floor.

For each size N: a parent table (N/5 rows) and a child table (N rows) from 3 sources with a
realistic defect mix: ~2% empty values (fill / drop), ~1% out-of-range values (clamp / drop /
replace), ~0.5% exact duplicates, ~1% duplicate keys across sources, ~1% dangling foreign keys.
Every measurement runs in a fresh subprocess, so peak RSS (ru_maxrss) is per run:
  generate -> Parquet files (once per size);
  floor: read + write the Parquet with pyarrow only;
  rules: read into pandas (ArrowDtype, zero copy: the input counts once), apply_rules parent
  then child (the child step holds the parent's cleaned data, as the pipeline's clean asset
  does), write cleaned data and quarantine as Parquet.
Both read with the same options (READ: no pre-buffering, faster and ~240 MB less at 10M).
Floor and rules runs alternate REPEATS times; times are medians (all runs printed), so one
noisy run on a shared machine does not set the ratio. Peak RSS is the largest of the rules runs;
`baseline_rss_mb` is the same process's RSS after importing pandas/pyarrow/etl_assets, before
reading anything, and `*_above_baseline*` subtract it (the interpreter and libraries are not
data). rows_per_s = (parent + child rows) / apply_rules time; ratio_to_floor = (read + rules +
write) / floor. Usage: python bench/rules.py [--quick]. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

READ = {"pre_buffer": False}
REPEATS = 3
SOURCES = [("crm", 3), ("shop", 2), ("legacy", 1)]


def module():
    from etl_assets.metadata.jsonld import CONTEXT_URL as CONTEXT
    from etl_assets.metadata.loader import validate_document

    tables = [
        {
            "name": "customer",
            "columns": [
                {"name": "id", "dataType": "integer"},
                {"name": "name", "dataType": "string", "empty": {"strategy": "fill", "value": "?"}},
                {
                    "name": "born",
                    "dataType": "date",
                    "range": {"min": "1900-01-01", "max": "2024-12-31", "onViolation": "clamp"},
                },
                {
                    "name": "score",
                    "dataType": "number",
                    "range": {"min": 0, "max": 100, "onViolation": "drop"},
                },
                {
                    "name": "segment",
                    "dataType": "string",
                    "range": {
                        "allowed": ["a", "b", "c", "d"],
                        "onViolation": "replace",
                        "replacement": "other",
                    },
                },
            ],
            "primaryKey": "id",
            "onKeyConflict": "sourcePriority",
        },
        {
            "name": "purchase",
            "columns": [
                {"name": "id", "dataType": "integer"},
                {
                    "name": "customer_id",
                    "dataType": "integer",
                    "foreignKey": {"table": "customer", "column": "id"},
                },
                {"name": "at", "dataType": "datetime"},
                {
                    "name": "amount",
                    "dataType": "number",
                    "empty": {"strategy": "drop"},
                    "range": {"min": 0, "onViolation": "clamp"},
                },
                {"name": "note", "dataType": "string", "empty": {"strategy": "keep"}},
            ],
            "primaryKey": "id",
            "onKeyConflict": "sourcePriority",
        },
    ]
    collection = [
        {"table": t["name"], "source": s, "priority": p, "extract": {"type": "file", "path": "x"}}
        for t in tables
        for s, p in SOURCES
    ]
    return validate_document(
        {"@context": CONTEXT, "name": "bench", "tables": tables, "collection": collection}
    )


def generate(n: int, folder: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(42)

    def defects(rows: int, share: float) -> np.ndarray:
        return rng.random(rows) < share

    def source(rows: int) -> pa.Array:
        return pa.DictionaryArray.from_arrays(
            pa.array(rng.integers(0, 3, rows).astype(np.int32)), [s for s, _ in SOURCES]
        ).cast(pa.string())

    def with_dupes(columns: dict[str, np.ndarray | pa.Array], rows: int) -> pa.Table:
        """~1% rows re-use another row's key (other values differ); ~0.5% are exact copies."""
        ids = columns["id"]
        clash = defects(rows, 0.01)
        ids[clash] = rng.integers(0, rows, int(clash.sum()))
        table = pa.table(columns)
        copies = rng.integers(0, rows, rows // 200)
        return pa.concat_tables([table, table.take(pa.array(copies))])

    m = n // 5
    ids = np.arange(m, dtype=np.int64)
    names = pc.binary_join_element_wise("name-", pc.cast(pa.array(ids), pa.string()), "")
    names = pc.if_else(pa.array(defects(m, 0.02)), pa.scalar(" ", pa.string()), names)
    born = rng.integers(-25_000, 20_000, m).astype(np.int32)
    born[defects(m, 0.01)] = 25_000  # after 2024-12-31: clamped
    score = rng.random(m) * 100
    score[defects(m, 0.01)] = 150.0  # dropped
    segment = np.array(["a", "b", "c", "d", "x"])[
        np.minimum(rng.integers(0, 200, m) // 49, 4)
    ]  # ~0.5% "x": replaced
    customer = with_dupes(
        {
            "id": ids,
            "name": names,
            "born": pa.array(born).cast(pa.date32()),
            "score": score,
            "segment": pa.array(segment),
            "_dm_source": source(m),
        },
        m,
    )
    pq.write_table(customer, folder / "customer.parquet")

    pids = np.arange(n, dtype=np.int64)
    customer_id = rng.integers(0, m, n)
    customer_id[defects(n, 0.01)] += m + 1  # dangling
    amount = pa.array(rng.random(n) * 500, mask=defects(n, 0.02))  # dropped
    amount = pc.if_else(pa.array(defects(n, 0.01)), pa.scalar(-5.0), amount)  # clamped
    at = (1_600_000_000_000_000 + rng.integers(0, 10**14, n)).astype("datetime64[us]")
    note = pa.array(np.array(["", "gift", "express", "  ", "returned"])[rng.integers(0, 5, n)])
    purchase = with_dupes(
        {
            "id": pids,
            "customer_id": customer_id,
            "at": pa.array(at),
            "amount": amount,
            "note": note,
            "_dm_source": source(n),
        },
        n,
    )
    pq.write_table(purchase, folder / "purchase.parquet")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floor(folder: Path) -> dict:
    import pyarrow.parquet as pq

    start = time.perf_counter()
    for name in ("customer", "purchase"):
        table = pq.read_table(folder / f"{name}.parquet", **READ)
        pq.write_table(table, folder / f"{name}.floor.parquet")
        del table
    return {"floor_s": time.perf_counter() - start, "floor_peak_rss_mb": peak_rss_mb()}


def run_rules(folder: Path) -> dict:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from etl_assets.clean.rules import apply_rules
    from etl_assets.metadata.references import table_order

    mod = module()
    baseline = peak_rss_mb()  # interpreter + libraries, before any data
    read_s = rules_s = write_s = 0.0
    rows = arrow_bytes = 0
    cleaned: dict[str, pd.DataFrame] = {}
    counts = {}
    for name in table_order(mod):
        t0 = time.perf_counter()
        arrow = pq.read_table(folder / f"{name}.parquet", **READ)
        arrow_bytes += arrow.nbytes
        df = arrow.to_pandas(types_mapper=pd.ArrowDtype)
        del arrow
        rows += len(df)
        t1 = time.perf_counter()
        result = apply_rules(
            df, mod.table(name), mod, version="1.0.0", parents=cleaned, parent_key_maps={}
        )
        del df
        t2 = time.perf_counter()
        pq.write_table(
            pa.Table.from_pandas(result.data, preserve_index=False),
            folder / f"{name}.clean.parquet",
        )
        pq.write_table(
            pa.Table.from_pandas(result.quarantine, preserve_index=False),
            folder / f"{name}.quarantine.parquet",
        )
        t3 = time.perf_counter()
        read_s, rules_s, write_s = read_s + t1 - t0, rules_s + t2 - t1, write_s + t3 - t2
        cleaned[name] = result.data  # the next table's foreign keys need it; the rest is written
        counts[name] = result.counts
        del result
    return {
        "rows": rows,
        "arrow_mb": arrow_bytes / 2**20,
        "read_s": read_s,
        "rules_s": rules_s,
        "write_s": write_s,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": baseline,
        "counts": counts,
    }


def child(mode: str, folder: Path, n: int) -> dict:
    cmd = [sys.executable, __file__, f"--{mode}", str(folder), "--n", str(n)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(n: int) -> dict:
    floors, runs = [], []
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        folder = Path(tmp)
        child("generate", folder, n)
        for _ in range(REPEATS):  # alternate, so load from other processes hits both alike
            floors.append(child("floor", folder, n))
            runs.append(child("rules", folder, n))
    floor_s = statistics.median(f["floor_s"] for f in floors)
    ours = [r["read_s"] + r["rules_s"] + r["write_s"] for r in runs]
    ours_s = statistics.median(ours)
    rules_s = statistics.median(r["rules_s"] for r in runs)
    last = runs[-1]
    peak = max(r["peak_rss_mb"] for r in runs)
    baseline = statistics.median(r["baseline_rss_mb"] for r in runs)
    arrow_mb = last["arrow_mb"]
    return {
        "rows": last["rows"],
        "rows_per_s": round(last["rows"] / rules_s),
        "floor_rows_per_s": round(last["rows"] / floor_s),
        "ratio_to_floor": round(ours_s / floor_s, 2),
        "rules_only_ratio_to_floor": round(rules_s / floor_s, 2),
        "peak_rss_mb": round(peak, 1),
        "arrow_mb": round(arrow_mb, 1),
        "peak_rss_to_arrow": round(peak / arrow_mb, 2),
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_above_baseline_mb": round(peak - baseline, 1),
        "peak_rss_above_baseline_to_arrow": round((peak - baseline) / arrow_mb, 2),
        "read_s": round(statistics.median(r["read_s"] for r in runs), 2),
        "rules_s": round(rules_s, 2),
        "write_s": round(statistics.median(r["write_s"] for r in runs), 2),
        "ours_s": round(ours_s, 2),
        "floor_s": round(floor_s, 2),
        "repeats": REPEATS,
        "ours_runs_s": [round(x, 2) for x in ours],
        "rules_runs_s": [round(r["rules_s"], 2) for r in runs],
        "floor_runs_s": [round(f["floor_s"], 2) for f in floors],
        "peak_rss_runs_mb": [round(r["peak_rss_mb"], 1) for r in runs],
        "floor_peak_rss_mb": round(max(f["floor_peak_rss_mb"] for f in floors), 1),
        "counts": last["counts"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 1M rows")
    parser.add_argument("--generate", type=Path)
    parser.add_argument("--floor", type=Path)
    parser.add_argument("--rules", type=Path)
    parser.add_argument("--n", type=int, default=0)
    args = parser.parse_args()
    if args.generate:
        generate(args.n, args.generate)
        print(json.dumps({"ok": True}))
        return
    if args.floor:
        print(json.dumps(floor(args.floor)))
        return
    if args.rules:
        print(json.dumps(run_rules(args.rules)))
        return

    sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    last = None
    for n in sizes:
        r = measure(n)
        counts = r.pop("counts")
        print(f"child rows {n:,} (+ parent {n // 5:,}, + duplicates): {r['rows']:,} rows")
        print(
            f"  runs (floor and ours alternating, {r['repeats']}x): floor {r['floor_runs_s']} s;"
            f" ours (read+rules+write) {r['ours_runs_s']} s, of which rules {r['rules_runs_s']} s;"
            f" peak RSS {r['peak_rss_runs_mb']} MB"
        )
        print(
            f"  medians: rules {r['rules_s']} s = {r['rows_per_s']:,} rows/s; read"
            f" {r['read_s']} s, write {r['write_s']} s; floor (pyarrow read+write) {r['floor_s']} s"
            f" = {r['floor_rows_per_s']:,} rows/s"
        )
        print(
            f"  ratio to floor: {r['ratio_to_floor']} (read+rules+write), rules alone"
            f" {r['rules_only_ratio_to_floor']}"
        )
        print(
            f"  memory: Arrow size of the input {r['arrow_mb']} MB; peak RSS (raw, largest run)"
            f" {r['peak_rss_mb']} MB = {r['peak_rss_to_arrow']}x; interpreter+libraries baseline"
            f" {r['baseline_rss_mb']} MB; above baseline {r['peak_rss_above_baseline_mb']} MB ="
            f" {r['peak_rss_above_baseline_to_arrow']}x; floor peak RSS {r['floor_peak_rss_mb']} MB"
        )
        for table, c in counts.items():
            print(f"  {table}: {json.dumps(c)}")
        last = r
    print(json.dumps(last))


if __name__ == "__main__":
    main()
