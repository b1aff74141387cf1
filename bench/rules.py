"""Benchmark of the field rules engine (etl_assets.rules) against the Parquet read+write floor.

For each size N: a parent table (N/5 rows) and a child table (N rows) from 3 sources with a
realistic defect mix: ~2% empty values (fill / drop), ~1% out-of-range values (clamp / drop /
replace), ~0.5% exact duplicates, ~1% duplicate keys across sources, ~1% dangling foreign keys.
Each size runs in fresh subprocesses so peak RSS (ru_maxrss) is per size:
  generate -> Parquet files;  floor: read + write the Parquet with pyarrow only;
  rules: read into pandas (ArrowDtype), apply_rules parent then child, write cleaned data and
  quarantine as Parquet.
rows_per_s = (parent + child rows) / time of apply_rules alone; ratio_to_floor = (read + rules +
write) / floor. Usage: python bench/rules.py [--quick]. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONTEXT = "https://w3id.org/datamodule-etl/context/v1"
SOURCES = [("crm", 3), ("shop", 2), ("legacy", 1)]


def module():
    from etl_assets.model import DataModule

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
    return DataModule.model_validate(
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
        table = pq.read_table(folder / f"{name}.parquet")
        pq.write_table(table, folder / f"{name}.floor.parquet")
        del table
    return {"floor_s": time.perf_counter() - start, "floor_peak_rss_mb": peak_rss_mb()}


def run_rules(folder: Path) -> dict:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from etl_assets.references import table_order
    from etl_assets.rules import apply_rules

    mod = module()
    read_s = rules_s = write_s = 0.0
    rows = arrow_bytes = 0
    cleaned: dict[str, pd.DataFrame] = {}
    counts = {}
    for name in table_order(mod):
        t0 = time.perf_counter()
        arrow = pq.read_table(folder / f"{name}.parquet")
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
        cleaned[name] = result.data
        counts[name] = result.counts
    return {
        "rows": rows,
        "arrow_mb": arrow_bytes / 2**20,
        "read_s": read_s,
        "rules_s": rules_s,
        "write_s": write_s,
        "peak_rss_mb": peak_rss_mb(),
        "counts": counts,
    }


def child(mode: str, folder: Path, n: int) -> dict:
    cmd = [sys.executable, __file__, f"--{mode}", str(folder), "--n", str(n)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        folder = Path(tmp)
        child("generate", folder, n)
        fl = child("floor", folder, n)
        rr = child("rules", folder, n)
    ours = rr["read_s"] + rr["rules_s"] + rr["write_s"]
    return {
        "rows": rr["rows"],
        "rows_per_s": round(rr["rows"] / rr["rules_s"]),
        "floor_rows_per_s": round(rr["rows"] / fl["floor_s"]),
        "ratio_to_floor": round(ours / fl["floor_s"], 2),
        "rules_only_ratio_to_floor": round(rr["rules_s"] / fl["floor_s"], 2),
        "peak_rss_mb": round(rr["peak_rss_mb"], 1),
        "arrow_mb": round(rr["arrow_mb"], 1),
        "peak_rss_to_arrow": round(rr["peak_rss_mb"] / rr["arrow_mb"], 2),
        "read_s": round(rr["read_s"], 2),
        "rules_s": round(rr["rules_s"], 2),
        "write_s": round(rr["write_s"], 2),
        "floor_s": round(fl["floor_s"], 2),
        "counts": rr["counts"],
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
            f"  rules {r['rules_s']} s = {r['rows_per_s']:,} rows/s; read {r['read_s']} s,"
            f" write {r['write_s']} s; floor (pyarrow read+write) {r['floor_s']} s ="
            f" {r['floor_rows_per_s']:,} rows/s"
        )
        print(
            f"  ratio to floor: {r['ratio_to_floor']} (read+rules+write), rules alone"
            f" {r['rules_only_ratio_to_floor']}; peak RSS {r['peak_rss_mb']} MB,"
            f" Arrow size {r['arrow_mb']} MB, ratio {r['peak_rss_to_arrow']}"
        )
        for table, c in counts.items():
            print(f"  {table}: {json.dumps(c)}")
        last = r
    print(json.dumps(last))


if __name__ == "__main__":
    main()
