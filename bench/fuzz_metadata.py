"""Fuzz the metadata loader: seeded mutations of both example modules, each loaded the way the
code location loads it (and `dmetl validate`, which is the same function).

Every mutant is written beside an untouched copy of the other example and loaded in a worker
process with a time limit. Outcomes per case:

- accepted: the module built (its definitions pass Dagster's own validation);
- rejected: a `MetadataError` naming the file (and JSON path where there is one);
- traceback: anything else — an exception escaping the loader, an error our validation did not
  phrase (`internal`), an error without the file's name, or the untouched module not loading;
- hang: the case did not finish within `--timeout` seconds.

With `--runs K`, every accepted mutant up to K also runs its prepare job in process on the
example data: a step that fails with an exception that is not our own `Failure` is a traceback.

    python bench/fuzz_metadata.py [--quick] [--cases N] [--seed S] [--runs K]

The last line printed is one JSON object with the counts.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import multiprocessing as mp
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fresh_database  # noqa: E402

EXAMPLES = ROOT / "datamodules"
NAMES = ("clinic", "staff_survey")
SENTINELS = {
    '"__BIGINT__"': "1" * 4400,
    '"__NAN__"': "NaN",
    '"__INF__"': "-Infinity",
    '"__HUGEFLOAT__"': "1e999",
    '"__SURROGATE__"': '"\\ud800x"',
    '"__DEEP__"': "[" * 3000 + "]" * 3000,
}
WEIRD: list[Any] = [
    None, True, False, 0, -1, 1, 2, 3.5, -0.0, 10**18, "", " ", "x", "no", "yes", "2", "true",
    "2026-01-01", "2026-13-45", "1900", "1887-02-30T25:00:00", "@daily", "0 2 * * *",
    "61 * * * *", "Europe/Berlin", "Mars/Olympus", "EST5EDT", "UTC+1", "*", "../../etc/passwd",
    "/dev/zero", "data/*.csv", "\u0000", "\u00e9\u00e8", "\U0001f642", "a" * 5000,
    [], {}, [1, 2], ["a", "a"], {"a": 1}, [{"x": None}], [[["deep"]]],
    "__BIGINT__", "__NAN__", "__INF__", "__HUGEFLOAT__", "__SURROGATE__", "__DEEP__",
]  # fmt: skip
KEYS = ["type", "name", "method", "strategy", "onViolation", "min", "max", "k", "l", "t", "path",
        "dataType", "table", "column", "connection", "cron", "timezone", "level", "priority",
        "nullable", "retentionDays", "quasiIdentifiers", "models", "urlEnv", "hierarchy"]  # fmt: skip


# --- mutations ---------------------------------------------------------------------------------


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _set(doc: Any, path: tuple, value: Any) -> None:
    _get(doc, path[:-1])[path[-1]] = value


def _weird(rng: random.Random, doc: dict) -> Any:
    choice = rng.random()
    if choice < 0.15:  # a value from elsewhere in the document (right shape, wrong place)
        return copy.deepcopy(_get(doc, rng.choice(_paths(doc))))
    return copy.deepcopy(rng.choice(WEIRD))


def _retype(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return rng.choice(["no", "yes", 1, 0])
    if isinstance(value, int | float):
        return rng.choice([str(value), [value], value * 10**12, -value, float("nan")])
    if isinstance(value, str):
        try:
            return rng.choice([float(value), int(value)])
        except ValueError:
            return rng.choice([[value], {"@value": value}, value * 3, value[:1], value.upper()])
    if isinstance(value, list):
        return value[0] if value else {}
    if isinstance(value, dict):
        return list(value.values())
    return "null"


def mutate_structure(doc: dict, rng: random.Random) -> str:
    """Change the parsed document in place; say what was done."""
    paths = [p for p in _paths(doc) if p]
    path = rng.choice(paths)
    parent = _get(doc, path[:-1])
    op = rng.randrange(9)
    if op == 0 and isinstance(parent, dict):
        del parent[path[-1]]
        return f"delete {path}"
    if op == 1:
        _set(doc, path, _weird(rng, doc))
        return f"weird value at {path}"
    if op == 2:
        _set(doc, path, _retype(_get(doc, path), rng))
        return f"retype {path}"
    if op == 3:
        target = _get(doc, path)
        if isinstance(target, dict):
            target[rng.choice(KEYS + ["unknownKey", "@id", "@type"])] = _weird(rng, doc)
            return f"add key at {path}"
    if op == 4 and isinstance(parent, list) and parent:
        parent.insert(rng.randrange(len(parent) + 1), copy.deepcopy(rng.choice(parent)))
        return f"duplicate list element at {path}"
    if op == 5 and isinstance(parent, list) and len(parent) > 1:
        i, j = rng.sample(range(len(parent)), 2)
        parent[i], parent[j] = parent[j], parent[i]
        return f"swap list elements at {path}"
    if op == 6 and isinstance(parent, dict):
        parent[f"__DUP__{path[-1]}"] = _weird(rng, doc)
        return f"duplicate key {path}"
    if op == 7:
        target = _get(doc, path)
        if isinstance(target, int | float) and not isinstance(target, bool):
            _set(doc, path, rng.choice([0, -1, 2**63, -(2**63), 1e308, 0.5, target + 1]))
            return f"boundary number at {path}"
    if op == 8 and isinstance(parent, dict) and isinstance(path[-1], str):
        other = rng.choice(KEYS)
        parent[other] = parent.pop(path[-1])
        return f"rename key {path} -> {other}"
    _set(doc, path, _weird(rng, doc))
    return f"weird value at {path}"


def to_text(doc: dict, rng: random.Random) -> tuple[str, str]:
    """(file name, text): JSON-LD mostly, YAML-LD sometimes, a few raw text edits."""
    text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
    text = text.replace('"__DUP__', '"')
    for sentinel, raw in SENTINELS.items():
        text = text.replace(sentinel, raw)
    roll = rng.random()
    if roll < 0.06:
        cut = rng.randrange(len(text))
        return "module.jsonld", text[:cut]
    if roll < 0.12:
        i = rng.randrange(len(text))
        return "module.jsonld", text[:i] + rng.choice(
            ["{", "}", ",", '"', "\\", "\x00", ""]
        ) + text[i + 1 :]
    if roll < 0.2:
        try:
            body = yaml.safe_dump(json.loads(text), allow_unicode=True, sort_keys=False)
        except (ValueError, RecursionError):
            body = text
        if rng.random() < 0.3:  # an alias bomb under an unknown key
            bomb = ['bomb0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
            bomb += [f"bomb{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
            body = "\n".join(bomb) + "\n" + body
        return "module.yaml", body
    return "module.jsonld", text


def make_case(rng: random.Random, originals: dict[str, dict]) -> tuple[str, str, str, str]:
    name = rng.choice(NAMES)
    doc = copy.deepcopy(originals[name])
    steps = [mutate_structure(doc, rng) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    filename, text = to_text(doc, rng)
    return name, filename, text, "; ".join(steps)


# --- the worker --------------------------------------------------------------------------------


def _prepare(case_dir: Path, name: str, filename: str, text: str) -> None:
    mutant = case_dir / name
    mutant.mkdir(parents=True)
    for item in (EXAMPLES / name).iterdir():
        if not item.name.startswith("module."):
            (mutant / item.name).symlink_to(item)
    (mutant / filename).write_text(text, "utf-8", errors="surrogatepass")
    for other in NAMES:
        if other != name:
            (case_dir / other).symlink_to(EXAMPLES / other)


def _load(case_dir: Path, name: str, home: Path) -> tuple[str, str]:
    import dagster as dg

    from etl_assets.definitions import build_definitions, load_catalog
    from resources.deployment import Deployment

    catalog = load_catalog(case_dir)
    names = {m.name for m in catalog.modules}
    if any(other not in names for other in NAMES if other != name):
        return "traceback", f"the untouched module did not load: {catalog.errors}"
    mine = [e for e in catalog.errors if name in e.file]
    if len(mine) > 1:
        return "traceback", f"{len(mine)} errors for one module"
    deployment = Deployment(
        kind="local",
        dagster_home=home,
        modules_dir=case_dir,
        postgres_url_set=False,
        outbox_root=str(home / "outbox"),
        storage_root=str(home / "storage"),
    )
    defs, _ = build_definitions(case_dir, deployment)
    dg.Definitions.validate_loadable(defs)
    if name in names:
        return "accepted", ""
    if not mine:
        return "traceback", "neither loaded nor reported"
    error = mine[0]
    if error.internal:
        return "traceback", str(error)[:500]
    if not str(error).startswith(error.file) or "module." not in error.file:
        return "traceback", f"error does not name the file: {str(error)[:300]}"
    return "rejected", str(error).splitlines()[0][-200:]


def _run_prepare(case_dir: Path, name: str, home: Path, postgres_url: str) -> tuple[str, str]:
    """Run the accepted mutant's prepare job against a real PostgreSQL (the shrink check reads
    the registry); an exception that is not our Failure is a defect."""
    import dagster as dg

    from etl_assets.definitions import load_catalog
    from etl_assets.orchestration.jobs import prepare_job_name
    from etl_assets.stages import partitions_def_name
    from resources import OutboxResource, ParquetIOManager
    from resources.deployment import GovernanceResource, PrivacyResource, SecretsResource
    from resources.io_manager import IO_MANAGER_KEY
    from resources.postgres import PostgresResource

    module = load_catalog(case_dir, only=name).module(name)
    resources = {
        "postgres": PostgresResource(url=postgres_url),
        "outbox": OutboxResource(root=str(home / "outbox")),
        "secrets": SecretsResource(generate_missing_keys_in=str(home / "secrets")),
        "privacy": PrivacyResource(),
        "governance": GovernanceResource(),
        IO_MANAGER_KEY: ParquetIOManager(base_dir=str(home / "storage")),
    }
    d = module.definitions
    defs = dg.Definitions(assets=d.assets, asset_checks=d.checks, jobs=d.jobs, resources=resources)
    (home / "instance").mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(home / "instance")) as instance:
        instance.add_dynamic_partitions(partitions_def_name(name), ["9.0.0"])
        result = defs.resolve_job_def(prepare_job_name(name)).execute_in_process(
            instance=instance, partition_key="9.0.0", raise_on_error=False
        )
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data is None:
                err = data.error
                cause = err.cause.cls_name if err and err.cause else ""
                return (
                    "run_traceback",
                    f"{event.step_key}: {err.cls_name if err else '?'} {cause}: {err.message[:300] if err else ''}",
                )
    return "run_ok", ""


def worker(conn: Any, postgres_url: str | None) -> None:
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    while True:
        job = conn.recv()
        if job is None:
            return
        case_dir, name, run = Path(job[0]), job[1], job[2]
        home = case_dir.parent / f"{case_dir.name}_home"
        try:
            outcome = _load(case_dir, name, home)
            if run and postgres_url and outcome[0] == "accepted":
                outcome = (*_run_prepare(case_dir, name, home, postgres_url), outcome)
        except BaseException as exc:  # noqa: BLE001 - that is what we count
            outcome = ("traceback", f"{type(exc).__name__}: {str(exc)[:300]}")
        conn.send(outcome[:2] + ((outcome[2],) if len(outcome) > 2 else ()))


class Worker:
    def __init__(self, postgres_url: str | None):
        self.postgres_url = postgres_url
        self.start()

    def start(self) -> None:
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker, args=(child, self.postgres_url), daemon=True)
        self.proc.start()

    def run(self, job: tuple, timeout: float) -> tuple | None:
        self.conn.send(job)
        if self.conn.poll(timeout):
            return self.conn.recv()
        self.proc.kill()
        self.proc.join()
        self.start()
        return None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 cases, 3 runs")
    ap.add_argument("--cases", type=int, default=None)
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--runs", type=int, default=None, help="accepted mutants to run (prepare job)")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args(argv)
    cases = args.cases or (300 if args.quick else 2000)
    runs = args.runs if args.runs is not None else (3 if args.quick else 25)
    rng = random.Random(args.seed)
    originals = {n: json.loads((EXAMPLES / n / "module.jsonld").read_text()) for n in NAMES}
    counts: Counter[str] = Counter()
    samples: dict[str, list[str]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="dm_fuzz_"))
    stack = contextlib.ExitStack()
    postgres_url = stack.enter_context(fresh_database()) if runs > 0 else None
    work = Worker(postgres_url)
    started = time.perf_counter()
    runs_done = 0
    try:
        for i in range(cases):
            name, filename, text, what = make_case(rng, originals)
            case_dir = tmp / f"case{i}"
            _prepare(case_dir, name, filename, text)
            run = runs_done < runs
            result = work.run((str(case_dir), name, run), args.timeout * (4 if run else 1))
            if result is None:
                result = ("hang", f"over {args.timeout:g} s")
            kind = result[0]
            if kind in ("run_ok", "run_traceback"):
                runs_done += 1
                counts["accepted"] += 1
            counts[kind] += 1
            if kind not in ("accepted", "run_ok") and len(samples.setdefault(kind, [])) < 6:
                samples[kind].append(f"[{what}] {result[1]}")
            shutil.rmtree(case_dir, ignore_errors=True)
            shutil.rmtree(tmp / f"case{i}_home", ignore_errors=True)
    finally:
        work.conn.send(None)
        work.proc.join(5)
        shutil.rmtree(tmp, ignore_errors=True)
        stack.close()
    seconds = time.perf_counter() - started
    for kind, lines in sorted(samples.items()):
        print(f"{kind}:")
        for line in lines:
            print(f"  {line}")
    summary = {
        "cases": cases,
        "seed": args.seed,
        "accepted": counts["accepted"],
        "rejected": counts["rejected"],
        "tracebacks": counts["traceback"],
        "hangs": counts["hang"],
        "runs": runs_done,
        "run_tracebacks": counts["run_traceback"],
        "seconds": round(seconds, 1),
        "cases_per_s": round(cases / seconds, 1),
    }
    print(
        f"{cases} mutants (seed {args.seed}): {summary['accepted']} accepted,"
        f" {summary['rejected']} rejected with a clear error, {summary['tracebacks']} raw"
        f" tracebacks, {summary['hangs']} hangs; {runs_done} accepted mutants run,"
        f" {summary['run_tracebacks']} raw tracebacks in runs ({seconds:.0f} s)"
    )
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
