"""Benchmark: SQL sources into Arrow on the machine's PostgreSQL and MariaDB — connectorx and ADBC
beside today's PostgreSQL connector (`COPY ... CSV`), the MariaDB client (the floor) and the
module's `sql` source (connectorx with its casts and reader process).

`python bench/sql_sources.py` reads 300k rows × 10 columns (`--quick`: 50k, one round) from a
fresh database on each server, three rounds alternating, each read in its own fresh interpreter,
and prints per library: the median wall time, rows/s, the ratio to the reference (PostgreSQL:
today's connector; MariaDB: `mariadb --batch --quick` into /dev/null) and the peak resident
memory of the worker's process tree above its baseline (as a multiple of the Arrow result).
Then type fidelity on a table of edge values (NULL vs '', integers, decimals, dates, datetimes
with and without a zone, booleans, text, times, MariaDB zero dates), and how each library reports
errors (seconds to fail, whether the password or a data value shows in the exception or on
stderr). ADBC is measured when installed (`pip install '.[bench-sql]'`); it reaches MariaDB only
through ODBC, which also needs Debian's `unixodbc` and `odbc-mariadb`. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fresh_database, fresh_mysql_database  # noqa: E402
from bench.sql_fixtures import (  # noqa: E402
    BULK_QUERY,
    EDGE_QUERY,
    LEGACY_QUERY,
    MY_EDGE_QUERY,
    fidelity,
    legacy_dates,
    seed_mysql,
    seed_postgres,
)
from bench.sql_workers import worker  # noqa: E402

SECRET = "hunter2-bench-pw"
METHODS = {
    "pg": ["copy_csv", "connectorx", "adbc", "sql_source"],
    "my": ["mariadb_cli", "connectorx", "adbc_odbc", "sql_source"],
}
REFERENCE = {"pg": "copy_csv", "my": "mariadb_cli"}
PROPERTY_COLUMN = {
    "null_vs_empty_text": "txt", "bigint_extremes": "big", "decimal_38_9_exact": "dec",
    "decimal_10_2_exact": "d2", "date": "day", "datetime_naive": "ts",
    "datetime_zoned_instant_utc": "tstz", "boolean": "flag", "unicode_text": "uni",
    "time_of_day": "tm",
}  # fmt: skip


def available(method: str) -> str | None:
    """Why `method` cannot run here, or None."""
    probes = {"adbc_odbc": "import adbcbridge", "adbc": "import adbc_driver_postgresql",
              "connectorx": "import connectorx", "sql_source": "import etl_assets.extract.sql"}  # fmt: skip
    if method == "adbc_odbc" and not Path("/etc/odbcinst.ini").is_file():
        return "no ODBC driver manager (Debian unixodbc + odbc-mariadb)"
    if method == "mariadb_cli" and not any(Path(p, "mariadb").exists() for p in ("/usr/bin",)):
        return "no mariadb client"
    code = probes.get(method)
    if code is None:
        return None
    ok = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT).returncode
    return None if ok == 0 else f"not installed ({code})"


def run_worker(method: str, engine: str, url: str, query: str, values: bool = False) -> dict:
    req = json.dumps({"engine": engine, "url": url, "query": query, "values": values})
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "RUST_BACKTRACE": "0"}
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", method],
        input=req, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )  # fmt: skip
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        out = {"error": "crashed", "message": f"exit {proc.returncode}: {proc.stderr[-300:]}"}
    if isinstance(out, dict):
        out["stderr"] = proc.stderr
    return out


# --- the three parts: throughput, fidelity, errors -----------------------------------------------


def throughput(
    engine: str, url: str, methods: list[str], rounds: int, rows: int
) -> dict[str, dict]:
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for _ in range(rounds):
        for m in methods:  # alternating: every round reads with every method in turn
            runs[m].append(run_worker(m, engine, url, BULK_QUERY))
    out = {}
    for m, rs in runs.items():
        bad = [r for r in rs if "error" in r]
        if bad:
            out[m] = {"error": f"{bad[0]['error']}: {bad[0]['message'][:200]}"}
            continue
        # the whole process tree (with the MariaDB client, the sql source's reader process)
        rss = [r["peak_mb"] - r["baseline_mb"] for r in rs]
        sec = statistics.median(r["seconds"] for r in rs)
        out[m] = {"seconds": round(sec, 3), "rows": rs[0].get("rows", rows),
                  "peak_rss_above_baseline_mb": round(statistics.median(rss), 1),
                  "arrow_mb": round(rs[0].get("arrow_mb", 0), 1)}  # fmt: skip
    return out


def fidelity_of(engine: str, url: str, methods: list[str]) -> dict[str, dict]:
    """Each edge column read on its own, so that one column a library cannot read does not hide
    how it reads the others."""
    q = EDGE_QUERY if engine == "pg" else MY_EDGE_QUERY
    names = [c.strip() for c in q[len("SELECT id,") : q.index(" FROM")].split(",")]
    queries = {
        n.strip("`"): q.replace(q[len("SELECT ") : q.index(" FROM")], f"id, {n}") for n in names
    }
    if engine == "my":
        queries["legacy"] = LEGACY_QUERY
    out = {}
    for m in methods:
        if m == "mariadb_cli":
            continue
        r = run_worker(m, engine, url, queries)
        if "error" in r:  # the worker itself failed
            out[m] = {"all": f"error {r['error']}: {r['message'][:160]}"}
            continue
        cols, errors, types = {}, {}, {}
        for name in queries:
            got = r[name]
            if "error" in got:
                errors[name] = f"error {got['error']}: {got['message'][:100]}"
            else:
                cols[name] = got["columns"][name if name != "legacy" else "day"]
                types[name] = got["types"][name if name != "legacy" else "day"]
        res = fidelity({k: cols.get(k, [None] * 3) for k in queries}, engine)
        for prop, col in PROPERTY_COLUMN.items():
            if col in errors and prop in res:
                res[prop] = errors[col]
        if engine == "my":
            day = None if "legacy" in errors else {"day": cols["legacy"]}
            res["legacy_zero_dates"] = legacy_dates(day, errors.get("legacy"))
        res["types"] = types
        out[m] = res
    return out


def _masked(text: str, url: str) -> str:
    return text.replace(SECRET, "«password»")


def error_cases(engine: str, url: str) -> dict[str, tuple[str, str, str]]:
    """(url, query, data value that must not show) per case."""
    p = urlsplit(url)
    host = f"{p.hostname}:{p.port}"
    db = p.path
    if engine == "pg":
        return {
            "unreachable": (f"postgresql://postgres@127.0.0.1:1{db}", "SELECT 1", ""),
            "bad_login": (f"postgresql://dm_nobody:{SECRET}@{host}{db}", "SELECT 1", ""),
            "syntax": (url, "SELECT * FROMM edge", ""),
            "data_value": (url, "SELECT CAST(uni AS int) AS n FROM edge WHERE id = 1", "Grüße"),
        }
    return {
        "unreachable": (f"mysql://root@127.0.0.1:1{db}", "SELECT 1", ""),
        "bad_login": (f"mysql://root:{SECRET}@{host}{db}", "SELECT 1", ""),
        "syntax": (url, "SELECT * FROMM edge", ""),
        "data_value": (url, "SELECT id, tm FROM edge ORDER BY id", "838:59:59"),
    }


def errors_of(engine: str, url: str, methods: list[str]) -> dict[str, dict]:
    jobs = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for m in methods:
            if m == "mariadb_cli":
                continue
            for case, (u, q, value) in error_cases(engine, url).items():
                jobs[(m, case)] = (pool.submit(run_worker, m, engine, u, q, True), value)
        out: dict[str, dict] = {}
        for (m, case), (fut, value) in jobs.items():
            r = fut.result()
            msg, err = r.get("message", ""), r.get("stderr", "")
            shows = [k for k, v in (("secret", SECRET), ("value", value)) if v and v in msg]
            leaks = [k for k, v in (("secret", SECRET), ("value", value)) if v and v in err]
            out.setdefault(m, {})[case] = {
                "raised": r.get("error", "nothing"),
                "seconds": r.get("seconds"),
                "message": _masked(msg, url)[:160].replace("\n", " "),
                "shows": shows,
                "on_stderr": leaks,
            }
    return out


# --- report --------------------------------------------------------------------------------------


def report(engine: str, figures: dict, fid: dict, errs: dict, skipped: dict) -> None:
    name = {"pg": "PostgreSQL", "my": "MariaDB"}[engine]
    ref = figures.get(REFERENCE[engine], {})
    print(f"\n{name}: {next((f['rows'] for f in figures.values() if f.get('rows')), '?'):,} rows"
          f" (reference: {REFERENCE[engine]})")  # fmt: skip
    for m, f in figures.items():
        if "error" in f:
            print(f"  {m:>12}: failed: {f['error']}")
            continue
        rows = f["rows"] or 0
        rate = rows / f["seconds"] if f["seconds"] else 0
        ratio = f["seconds"] / ref["seconds"] if ref.get("seconds") else float("nan")
        arrow = f["arrow_mb"] or figures.get("connectorx", {}).get("arrow_mb") or 0
        mult = f["peak_rss_above_baseline_mb"] / arrow if arrow else float("nan")
        f["rows_per_s"] = round(rate)
        f["time_vs_reference"] = round(ratio, 2)
        print(f"  {m:>12}: {f['seconds']:7.3f} s  {rate:>11,.0f} rows/s  {ratio:5.2f}x ref"
              f"  peak RSS +{f['peak_rss_above_baseline_mb']:7.1f} MB ({mult:4.1f}x Arrow"
              f" {arrow:.1f} MB)")  # fmt: skip
    for m, why in skipped.items():
        print(f"  {m:>12}: not measured: {why}")
    print(f"  type fidelity ({name}):")
    for m, res in fid.items():
        bad = {k: v for k, v in res.items() if k != "types" and v != "ok"}
        ok = sum(1 for k, v in res.items() if k != "types" and v == "ok")
        print(f"  {m:>12}: {ok} ok" + "".join(f"\n{'':>16}{k}: {v}" for k, v in bad.items()))
    print(f"  errors ({name}):")
    for m, cases in errs.items():
        for case, e in cases.items():
            flag = (
                ""
                if not (e["shows"] or e["on_stderr"])
                else (f"  LEAKS {','.join(e['shows'])} in message" if e["shows"] else "")
                + (f"  LEAKS {','.join(e['on_stderr'])} on stderr" if e["on_stderr"] else "")
            )
            print(f"  {m:>12} {case:>11}: {e['raised']:<18} after {e['seconds'] or 0:6.2f} s"
                  f"{flag}  | {e['message'][:90]}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50k rows, one round")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)  # in the fresh interpreter run_worker started
    rows, rounds = (50_000, 1) if args.quick else (300_000, 3)
    summary: dict = {"rows": rows, "rounds": rounds}
    for engine, fresh, seed in (("pg", fresh_database, seed_postgres),
                                ("my", fresh_mysql_database, seed_mysql)):  # fmt: skip
        skipped = {m: why for m in METHODS[engine] if (why := available(m))}
        methods = [m for m in METHODS[engine] if m not in skipped]
        with fresh() as url:
            seed(url, rows)
            figures = throughput(engine, url, methods, rounds, rows)
            fid = fidelity_of(engine, url, methods)
            errs = errors_of(engine, url, methods)
        report(engine, figures, fid, errs, skipped)
        summary[engine] = {"throughput": figures, "fidelity": fid, "errors": errs,
                           "not_measured": skipped}  # fmt: skip
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
