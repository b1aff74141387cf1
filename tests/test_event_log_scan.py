"""Nothing Dagster stores or a command prints quotes a restricted value: both examples run as a
user runs them (`dmetl run`, a launched multiprocess run with compute logs, a failing script
that prints a record on stderr), then the whole instance and every output are searched for every
raw identifying and quasi-identifying value of the sources."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from tests.conftest import EXAMPLES, ROOT

LEAKY_SCRIPT = """import sys
sys.stderr.write("could not read the record: 1002,Chloe Wagner,1938-05-13,F,10247\\n")
sys.exit(3)
"""


def run(cmd: list[str], env: dict) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    return proc.stdout + proc.stderr


def dmetl(*args: str) -> list[str]:
    return [sys.executable, "-m", "etl_assets.cli", *args]


def script_records(folder: Path, script: str) -> list[dict]:
    out = subprocess.run([sys.executable, str(folder / script)], cwd=folder, text=True,
                         capture_output=True, check=True).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def raw_values(mods: Path, levels: dict[str, int]) -> set[str]:
    """Names, exact birth dates, full postcodes, original ids of pseudonymized columns, exact
    visit times, and employee ids of the examples' sources (generalized QIs only where the
    version generalized them)."""
    values: set[str] = set()
    clinic = mods / "clinic"
    with open(clinic / "data" / "patients_registry.csv") as fh:
        registry = list(csv.DictReader(fh))
    legacy = script_records(clinic, "scripts/legacy_his.py")
    for r in registry + legacy:
        values |= {r["full_name"], str(r.get("patient_id") or r.get("PatientNo"))}
        if levels.get("clinic.patients.birth_date", 1):
            values.add(r["birth_date"])
        if levels.get("clinic.patients.postcode", 1):
            values.add(r["postcode"])
    for line in (clinic / "data" / "visits.jsonl").read_text().splitlines():
        visit = json.loads(line)
        values.add(str(visit["patient_id"]))
        if levels.get("clinic.visits.visit_time", 1) and visit.get("visit_time"):
            values.add(visit["visit_time"])
    for r in script_records(mods / "staff_survey", "scripts/survey_export.py"):
        if "employee_id" in r:
            values.add(r["employee_id"])
            if levels.get("staff_survey.responses.postcode", 1):
                values.add(r["postcode"])
    return {v for v in values if v and v not in ("None", "abc") and len(v) >= 4}


def find(text: str, values: set[str]) -> set[str]:
    hits = set()
    for v in values:
        if v in text and re.search(rf"(?<![\w.:-]){re.escape(v)}(?![\w.:-])", text):
            hits.add(v)
    return hits


def test_no_restricted_value_in_the_event_log_compute_logs_or_cli_output(tmp_path, pg_url):
    mods, home = tmp_path / "mods", tmp_path / "home"
    for name in ("clinic", "staff_survey"):
        shutil.copytree(EXAMPLES / name, mods / name)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DM_MODULES_DIR": str(mods),
        "DM_POSTGRES_URL": pg_url,
        "DM_OUTBOX_ROOT": str(tmp_path / "outbox"),
        "DM_STORAGE_ROOT": str(tmp_path / "steps"),  # restricted: not scanned
        "PYTHONPATH": str(ROOT),
    }
    printed = run(dmetl("run", "clinic"), env) + run(dmetl("run", "staff_survey"), env)
    assert printed.count(": succeeded (run") == 2, printed[-3000:]
    # a launched run: the multiprocess executor, every step's output captured as compute logs
    add = "import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions('clinic_versions', ['1.0.5'])"
    run([sys.executable, "-c", add], env)
    printed += run(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "etl_assets.definitions",
         "-a", "defs", "-j", "clinic_job", "--tags", '{"dagster/partition": "1.0.5"}'],
        env,
    )  # fmt: skip
    # a failing script that prints a record on stderr
    (mods / "clinic" / "scripts" / "legacy_his.py").write_text(LEAKY_SCRIPT)
    failed = run(dmetl("run", "clinic"), env)
    assert "FAILED" in failed and "kept in the restricted zone" in failed, failed[-3000:]
    printed += failed

    with dg.DagsterInstance.from_config(str(home)) as instance:
        levels = {}
        for rec in instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["clinic", "anonymize", "patients"])),
            limit=1,
        ).records:
            md = rec.asset_materialization.metadata
            levels |= {f"clinic.patients.{k[9:]}": int(v.value) for k, v in md.items()
                       if k.startswith("dm/level_")}  # fmt: skip
    values = raw_values(EXAMPLES, levels)
    assert len(values) > 400  # names, dates, postcodes, ids, visit times, employee ids

    kept = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix in (".out", ".err", ".complete") for p in kept), "no compute logs"
    assert any(p.suffix == ".db" for p in kept), "no event log"
    leaks = {}
    for path in kept:
        text = path.read_bytes().decode("utf-8", errors="replace")
        if hits := find(text, values):
            leaks[str(path.relative_to(home))] = sorted(hits)[:5]
    if hits := find(printed, values):
        leaks["CLI output"] = sorted(hits)[:5]
    assert leaks == {}
