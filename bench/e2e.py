"""End to end: one version of a generated two-table module through Dagster (`dmetl run`), beside
dlt loading the same CSV files and `psql \\copy` of them (the floor), alternating, medians.

The module (bench/e2e_data.py): customers N/10 rows, orders N rows x 12 columns, ~1% defects of
every kind, pseudonymized keys, generalized quasi-identifiers, k = 5, PostgreSQL snapshot sink.
`ours_plain` is the same data through a module with no rules and no anonymization. Every run
gets a fresh database and a fresh Dagster instance. Printed per size: wall time, rows/s and peak
RSS of the whole process tree of each contender, ours per stage, the growth factors
time(10M)/time(1M) and RSS(10M)/RSS(1M), and the ratios to dlt and to the floor.

    python bench/e2e.py [--quick] [--rounds 3] [--sizes 100000,1000000,10000000]

`--quick` runs 100k and 1M. dlt is installed by this benchmark into bench/.venv-dlt (not by
`make install`). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import dagster as dg
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fresh_database  # noqa: E402
from bench.e2e_data import write_data, write_module  # noqa: E402

DLT_VENV = ROOT / "bench" / ".venv-dlt"
DLT_REQUIREMENT = "dlt[postgres]>=1.31,<1.32"


def dlt_python() -> Path:
    """The benchmark's own virtualenv with dlt (created on first use)."""
    python = DLT_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DLT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", DLT_REQUIREMENT, "pyarrow"],
                       check=True)  # fmt: skip
    return python


def measure(cmd: list[str], env: dict, samples: list | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB of the process and all its children, output); with
    `samples`, every reading is appended to it as (epoch seconds, RSS MB)."""
    peak = 0.0
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=ROOT)  # fmt: skip
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                peak = max(peak, rss / 2**20)
                if samples is not None:
                    samples.append((time.time(), rss / 2**20))
            except psutil.Error:
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - started
    done.set()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed:\n{out[-3000:]}")
    return wall, peak, out


def stage_intervals(home: Path) -> dict[str, list[tuple[float, float]]]:
    """(start, end) epoch seconds of each step of the instance's one run, per stage."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [record] = instance.get_run_records(limit=1)
        starts, spans = {}, defaultdict(list)
        for entry in instance.all_logs(record.dagster_run.run_id):
            event = entry.dagster_event
            if event is None or not event.step_key:
                continue
            if event.event_type_value == "STEP_START":
                starts[event.step_key] = entry.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                stage = event.step_key.split("__")[1]
                spans[stage].append((starts.get(event.step_key, entry.timestamp), entry.timestamp))
    return dict(spans)


def stage_figures(spans: dict, samples: list) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per stage, and the peak RSS (MB) of the process tree while that stage ran."""
    seconds = {stage: sum(b - a for a, b in ivs) for stage, ivs in spans.items()}
    peaks = {
        stage: max((mb for t, mb in samples if any(a <= t <= b for a, b in ivs)), default=0.0)
        for stage, ivs in spans.items()
    }
    return seconds, peaks


def ours(mods: Path, module: str, work: Path) -> dict:
    home = work / f"home_{module}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    with fresh_database() as url:
        env = {**os.environ, "DAGSTER_HOME": str(home), "DM_MODULES_DIR": str(mods),
               "DM_POSTGRES_URL": url, "DM_OUTBOX_ROOT": str(home / "outbox"),
               "DM_STORAGE_ROOT": str(home / "steps"), "PYTHONPATH": str(ROOT)}  # fmt: skip
        samples: list = []
        cmd = [sys.executable, "-m", "etl_assets.cli", "run", module]
        wall, rss, _ = measure(cmd, env, samples)
    stages, stage_rss = stage_figures(stage_intervals(home), samples)
    shutil.rmtree(home, ignore_errors=True)
    return {"seconds": wall, "peak_rss_mb": rss, "stages": stages, "stage_rss_mb": stage_rss}


def dlt(data: Path, work: Path) -> dict:
    python = dlt_python()
    shutil.rmtree(work / "dlt_pipelines", ignore_errors=True)
    with fresh_database() as url:
        wall, rss, _ = measure(
            [str(python), str(ROOT / "bench" / "e2e_dlt.py"), str(data), url],
            {**os.environ, "RUNTIME__LOG_LEVEL": "WARNING"},
        )
    return {"seconds": wall, "peak_rss_mb": rss}


def floor(data: Path) -> dict:
    with fresh_database() as url:
        sql = []
        for name in ("customers", "orders"):
            header = (data / f"{name}.csv").open().readline().strip().split(",")
            cols = ", ".join(f'"{c.strip(chr(34))}" text' for c in header)
            sql += [f"CREATE TABLE {name} ({cols})",
                    f"\\copy {name} FROM '{data / name}.csv' CSV HEADER"]  # fmt: skip
        args = ["psql", url, "-q", "-v", "ON_ERROR_STOP=1"]
        for statement in sql:
            args += ["-c", statement]
        wall, rss, _ = measure(args, dict(os.environ))
    return {"seconds": wall, "peak_rss_mb": rss}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def run_size(n: int, rounds: int, work: Path) -> dict:
    mods = work / f"mods_{n}"
    write_data(work / f"gen_{n}", n)
    data = work / f"gen_{n}" / "data"
    write_module(mods / "e2e_full", n, full=True, data=data)
    write_module(mods / "e2e_plain", n, full=False, data=data)
    runs: dict[str, list[dict]] = defaultdict(list)
    contenders = {
        "ours_full": lambda: ours(mods, "e2e_full", work),
        "ours_plain": lambda: ours(mods, "e2e_plain", work),
        "dlt": lambda: dlt(data, work),
        "psql_copy": lambda: floor(data),
    }
    for r in range(rounds):
        order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in order:
            runs[name].append(contenders[name]())
            print(f"  {n:>11,} round {r + 1} {name:<10} {runs[name][-1]['seconds']:7.1f} s"
                  f"  {runs[name][-1]['peak_rss_mb']:7.0f} MB", flush=True)  # fmt: skip
    rows = n + n // 10
    out = {"rows": rows}
    for name, results in runs.items():
        out[name] = {
            "seconds": round(median(results, "seconds"), 2),
            "rows_per_s": round(rows / median(results, "seconds")),
            "peak_rss_mb": round(median(results, "peak_rss_mb")),
            "all_seconds": [round(r["seconds"], 2) for r in results],
        }
    for field, key, digits in (("stages", "stage_seconds", 2), ("stage_rss_mb", "stage_rss_mb", 0)):
        per_stage = defaultdict(list)
        for result in runs["ours_full"]:
            for stage, value in result[field].items():
                per_stage[stage].append(value)
        out["ours_full"][key] = {
            s: round(statistics.median(v), digits) for s, v in per_stage.items()
        }
    shutil.rmtree(work / f"gen_{n}", ignore_errors=True)
    shutil.rmtree(mods, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100k and 1M rows")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default=None, help="comma-separated order counts")
    args = ap.parse_args()
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else ([100_000, 1_000_000] if args.quick else [100_000, 1_000_000, 10_000_000])
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="dm_bench_e2e_") as tmp:
        for n in sizes:
            print(f"orders {n:,} + customers {n // 10:,}:", flush=True)
            results[n] = run_size(n, args.rounds, Path(tmp))
    report(results)


def report(results: dict[int, dict]) -> None:
    print(f"\n{'orders':>11} {'contender':<11} {'median s':>9} {'rows/s':>11} {'peak MB':>8}")
    for n, r in results.items():
        for name in ("ours_full", "ours_plain", "dlt", "psql_copy"):
            c = r[name]
            print(f"{n:>11,} {name:<11} {c['seconds']:>9.2f} {c['rows_per_s']:>11,} "
                  f"{c['peak_rss_mb']:>8,}")  # fmt: skip
        print(f"{'':>11} stages (ours_full, s): {r['ours_full']['stage_seconds']}")
        print(f"{'':>11} stages (ours_full, peak MB): {r['ours_full']['stage_rss_mb']}")
    sizes = sorted(results)
    summary = {"sizes": sizes}
    for n in sizes:
        r = results[n]
        summary[str(n)] = {
            "ours_full_s": r["ours_full"]["seconds"],
            "ours_plain_s": r["ours_plain"]["seconds"],
            "dlt_s": r["dlt"]["seconds"],
            "psql_copy_s": r["psql_copy"]["seconds"],
            "ours_full_rss_mb": r["ours_full"]["peak_rss_mb"],
            "dlt_rss_mb": r["dlt"]["peak_rss_mb"],
            "full_vs_dlt": round(r["ours_full"]["seconds"] / r["dlt"]["seconds"], 2),
            "plain_vs_floor": round(r["ours_plain"]["seconds"] / r["psql_copy"]["seconds"], 2),
            "stages_s": r["ours_full"]["stage_seconds"],
            "stages_rss_mb": r["ours_full"]["stage_rss_mb"],
        }
    if len(sizes) >= 2:
        a, b = results[sizes[-2]]["ours_full"], results[sizes[-1]]["ours_full"]
        summary["time_growth"] = round(b["seconds"] / a["seconds"], 2)
        summary["rss_growth"] = round(b["peak_rss_mb"] / a["peak_rss_mb"], 2)
        print(f"\ngrowth {sizes[-2]:,} -> {sizes[-1]:,}: time x{summary['time_growth']},"
              f" peak RSS x{summary['rss_growth']}")  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
