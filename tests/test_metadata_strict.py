"""Strict, bounded validation and load isolation: each input that once gave a raw traceback, a
hang, a silent coercion or a disagreement between `dmetl validate` and the code location gets a
clear error naming the file, the JSON path and what was expected, and the other modules load."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etl_assets.cli import main
from etl_assets.definitions import build_definitions, load_catalog
from resources.deployment import Deployment
from tests.conftest import EXAMPLES, ROOT

CLINIC = json.loads((EXAMPLES / "clinic" / "module.jsonld").read_text())


def with_clinic(tmp_path: Path, name: str, text: str, filename: str = "module.jsonld") -> Path:
    """`name` (the clinic example with its metadata replaced by `text`) beside staff_survey."""
    mods = tmp_path / "mods"
    folder = mods / name
    folder.mkdir(parents=True)
    for sub in ("data", "scripts"):
        (folder / sub).symlink_to(EXAMPLES / "clinic" / sub)
    (folder / filename).write_text(text, "utf-8", errors="surrogatepass")
    (mods / "staff_survey").symlink_to(EXAMPLES / "staff_survey")
    return mods


def clinic_with(change) -> str:
    doc = json.loads(json.dumps(CLINIC))
    change(doc)
    return json.dumps(doc)


def error_of(tmp_path: Path, text: str, filename: str = "module.jsonld") -> str:
    """The one error for the changed module; the untouched one still loads, in the code
    location and in `dmetl validate` alike."""
    mods = with_clinic(tmp_path, "clinic", text, filename)
    catalog = load_catalog(mods)
    assert [m.name for m in catalog.modules] == ["staff_survey"]
    [error] = catalog.errors
    assert not error.internal, str(error)
    home = tmp_path / "home"
    deployment = Deployment("local", home, mods, False, str(home / "o"), str(home / "s"))
    defs, _ = build_definitions(mods, deployment)
    keys = {k.path[0] for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"staff_survey", "clinic"}  # clinic as its invalid_metadata placeholder
    return str(error)


def range_of(doc: dict) -> dict:
    return doc["tables"][1]["columns"][2]["range"]  # patients.birth_date


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: range_of(d).update(min=1900, max="2026-01-01"),
         "tables[1].columns[2].range: min 1900 and max '2026-01-01' must both be numbers or both dates"),  # noqa: E501
        (lambda d: d["tables"][0]["columns"][2]["range"].update(max="2026-01-01"),
         "tables[0].columns[2].range: min 1 and max '2026-01-01' must both be numbers or both dates"),
        (lambda d: d["collection"][0].update(priority="2"),
         "collection[0].priority: Input should be a valid integer, got '2'"),
        (lambda d: d["tables"][0]["columns"][0].update(nullable="no"),
         "tables[0].columns[0].nullable: Input should be a valid boolean, got 'no'"),
        (lambda d: d.update(retentionDays=True),
         "retentionDays: Input should be a valid integer, got True"),
        (lambda d: d["schedule"].update(timezone="Mars/Olympus"),
         "schedule.timezone: timezone 'Mars/Olympus' is not an IANA time zone"),
        (lambda d: d["collection"][0]["extract"].update(path="data/nowhere.csv"),
         "collection[0].extract.path: file not found: data/nowhere.csv"),
        (lambda d: d["collection"][0]["extract"].update(encoding="klingon"),
         "collection[0].extract.encoding: unknown encoding 'klingon'"),
        (lambda d: d.update(connections=[{"name": "warehouse", "type": "postgres"}]),
         "connections[0]: a postgres connection needs urlEnv or options.host to reach its server"),
        (lambda d: d.update(connections=[{"name": "w", "type": "postgres",
                                          "options": {"host": "db", "password": "hunter2"}}]),
         "connections[0]: options 'password' look secret"),
        (lambda d: d.update({"@context": [d["@context"], {"name": 5}]}),
         "@context: not valid JSON-LD: @context property values must be strings or objects"),
        (lambda d: d["tables"][1]["columns"][0].update(anonymization={"method": "shuffle"}),
         "tables[1].columns[0].anonymization[0]: method 'shuffle' is not one of"),
    ],
)  # fmt: skip
def test_bad_values_name_file_path_and_expectation(tmp_path, change, expected):
    message = error_of(tmp_path, clinic_with(change))
    assert "mods/clinic/module.jsonld: " in message
    assert expected in message, message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": ' * 5000 + "1" + "}" * 5000, "nested more than 48 levels deep"),
        (json.dumps(CLINIC).replace('"version": "1.0.0"', '"version": ' + "9" * 4300),
         "an integer of 4300 digits is too large"),
        (json.dumps(CLINIC).replace('"scale": 1.5', '"scale": NaN'),
         "NaN is not a JSON number"),
        (json.dumps(CLINIC).replace('"scale": 1.5', '"scale": 1e999'), "is too large"),
        (json.dumps(CLINIC).replace('"Wards, patients', '"\\ud800 Wards, patients'),
         "description: text holds an unpaired surrogate"),
        (json.dumps(CLINIC).replace('"retentionDays": 30', '"retentionDays": 30, "retentionDays": 2'),
         "retentionDays: this key is given twice; keep one"),
        ('{"@context": ', "not valid JSON at line 1 column 14"),
    ],
)  # fmt: skip
def test_hostile_json_is_refused_quickly(tmp_path, text, expected):
    started = time.perf_counter()
    message = error_of(tmp_path, text)
    assert expected in message, message
    assert time.perf_counter() - started < 60  # a bound on a hang, not a speed target


def test_yaml_alias_bomb_and_duplicate_keys(tmp_path):
    bomb = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    message = error_of(tmp_path, "\n".join(bomb) + "\n", "module.yaml")
    assert "line 1: YAML anchors and aliases are not supported" in message
    (tmp_path / "mods").rename(tmp_path / "first")
    dup = "name: clinic\nname: clinic\n"
    assert "name: this key is given twice" in error_of(tmp_path, dup, "module.yaml")


def test_a_quasi_identifier_without_generalization_is_kept_or_suppressed(tmp_path):
    """validate and the run agree: such a column is kept whole or suppressed whole."""

    def no_generalization(d):
        d["tables"][1]["columns"][3].pop("anonymization")  # sex, a quasi-identifier

    mods = with_clinic(tmp_path, "clinic", clinic_with(no_generalization))
    assert [m.name for m in load_catalog(mods).modules] == ["clinic", "staff_survey"]


def test_validate_and_the_code_location_agree(tmp_path, capsys):
    bad = clinic_with(lambda d: d["schedule"].update(timezone="Mars/Olympus"))
    mods = with_clinic(tmp_path, "clinic", bad)
    assert main(["validate", str(mods)]) == 1
    captured = capsys.readouterr()
    assert "ok  staff_survey" in captured.out
    assert [str(e) for e in load_catalog(mods).errors] == captured.err.strip().splitlines()


def test_a_module_whose_jobs_collide_with_anothers_is_refused(tmp_path):
    mods = tmp_path / "mods"
    for name in ("shop", "shop_prepare"):
        assert main(["new", name, "--dir", str(mods)]) == 0
    catalog = load_catalog(mods)
    assert [m.name for m in catalog.modules] == ["shop"]
    assert "'shop_prepare_job' is also defined by module 'shop'" in str(catalog.errors[0])


def test_importing_the_definitions_builds_nothing():
    code = (
        "import etl_assets.metadata.loader as loader\n"
        "calls = []\n"
        "real = loader.discover\n"
        "loader.discover = lambda *a, **k: calls.append(1) or real(*a, **k)\n"
        "import etl_assets.definitions as d\n"
        "assert calls == [], calls\n"
        "d.defs()\n"
        "assert calls == [1], calls\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_fuzzed_metadata_gives_no_raw_tracebacks_and_no_hangs():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz_metadata.py"), "--cases", "250", "--runs", "3",
         "--seed", "7"],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["cases"] == 250 and summary["rejected"] > 100 and summary["accepted"] > 3
    assert summary["tracebacks"] == 0, proc.stdout[-4000:]
    assert summary["hangs"] == 0, proc.stdout[-4000:]
    assert summary["run_tracebacks"] == 0, proc.stdout[-4000:]
