"""Empty sources pass every stage; a version that empties or shrinks a table is stopped; ragged
CSV rows are quarantined, never padded; a mis-encoded byte is reported by file, line and byte."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import pandas as pd
import psycopg
import pytest

from etl_assets.errors import ExtractionError
from etl_assets.extract.entry import extract_entry
from etl_assets.metadata import CollectionEntry
from etl_assets.registry import list_versions
from tests.conftest import EXAMPLES
from tests.helpers import materializations, run_version

WARDS_HEADER = "ward_id,name,beds,department\n"
PATIENTS_HEADER = "patient_id,full_name,birth_date,sex,postcode,ward_id,diagnosis,weight_kg\n"


@pytest.fixture
def instance(dagster_home):
    with dg.instance_for_test(temp_dir=str(dagster_home)) as inst:
        yield inst


def empty_clinic(folder, allow_empty: bool = True) -> None:
    """Every source of the clinic example without records (header-only CSV, empty JSON)."""
    (folder / "data" / "wards.csv").write_text(WARDS_HEADER)
    (folder / "data" / "patients_registry.csv").write_text(PATIENTS_HEADER)
    (folder / "data" / "visits.jsonl").write_text("")
    (folder / "scripts" / "legacy_his.py").write_text("print('[]')\n")
    doc = json.loads((folder / "module.jsonld").read_text())
    doc["upload"]["allowEmpty"] = allow_empty
    (folder / "module.jsonld").write_text(json.dumps(doc))


@pytest.mark.parametrize("module", ["clinic", "staff_survey"])
def test_empty_sources_pass_every_stage(module, tmp_path, resources, instance, pg_url):
    """0 records through extract, clean (typing, rules, keys), anonymize (the search,
    pseudonyms, noise, permutation, anatomization), outbox and upload, without a crash."""
    folder = tmp_path / module
    shutil.copytree(EXAMPLES / module, folder)
    if module == "clinic":
        empty_clinic(folder)
    else:
        (folder / "scripts" / "survey_export.py").write_text("print('[]')\n")
    version = "1.0.1" if module == "clinic" else "2.3.1"
    result = run_version(folder, version, resources, instance)
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]
    mats = materializations(result)
    assert {path[1] for path in mats} == {"extract", "clean", "anonymize", "outbox", "upload"}
    assert all(md["dagster/row_count"] == 0 for md in mats.values())
    with psycopg.connect(pg_url) as conn:
        [row] = list_versions(conn, module)
    assert set(row["row_counts"].values()) == {0}


def test_a_version_that_empties_a_table_is_stopped_unless_allowed(
    tmp_path, resources, instance, pg_url
):
    folder = tmp_path / "clinic"
    shutil.copytree(EXAMPLES / "clinic", folder)
    assert run_version(folder, "1.0.1", resources, instance).success
    (folder / "data" / "wards.csv").write_text(WARDS_HEADER)  # the export came back empty
    result = run_version(folder, "1.0.2", resources, instance)
    assert not result.success
    check = next(
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == "no_unexpected_shrink"
        and not e.event_specific_data.passed
    )
    assert "wards: 0 rows in 1.0.2 against 7 in the current version 1.0.1" in check.description
    with psycopg.connect(pg_url) as conn:
        assert [v["version"] for v in list_versions(conn, "clinic")] == ["1.0.1"]
        assert conn.execute("SELECT count(*) FROM dm_clinic.wards").fetchone()[0] == 7
    doc = json.loads((folder / "module.jsonld").read_text())
    doc["upload"]["allowEmpty"] = True
    (folder / "module.jsonld").write_text(json.dumps(doc))
    assert not run_version(folder, "1.0.3", resources, instance).success  # patients lose > 50%


def test_a_version_that_loses_more_than_the_limit_is_stopped(tmp_path, resources, instance, pg_url):
    folder = tmp_path / "clinic"
    shutil.copytree(EXAMPLES / "clinic", folder)
    assert run_version(folder, "1.0.1", resources, instance).success
    visits = folder / "data" / "visits.jsonl"
    visits.write_text("\n".join(visits.read_text().splitlines()[:40]) + "\n")
    result = run_version(folder, "1.0.2", resources, instance)
    assert not result.success
    descriptions = [
        e.event_specific_data.description
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    assert any("more than upload.shrinkLimit (50%) lost" in d for d in descriptions), descriptions
    doc = json.loads((folder / "module.jsonld").read_text())
    doc["upload"]["shrinkLimit"] = 1
    (folder / "module.jsonld").write_text(json.dumps(doc))
    assert run_version(folder, "1.0.3", resources, instance).success


def csv_entry(path: str, **extra) -> CollectionEntry:
    return CollectionEntry.model_validate(
        {"table": "t", "source": "s", "extract": {"type": "file", "path": path, **extra}}
    )


def test_ragged_rows_become_quarantined_records_never_padded(tmp_path, resources, instance):
    from tests.helpers import CONTEXT, write_module

    text = "id,name,score\n1,ann,3\n2,bob\n3,cy,4,extra\n4,dee,5\n"
    doc = {
        "@context": CONTEXT,
        "name": "scores",
        "tables": [{"name": "t", "columns": [
            {"name": "id", "dataType": "integer"}, {"name": "name", "dataType": "string"},
            {"name": "score", "dataType": "integer"}]}],
        "collection": [{"table": "t", "source": "s", "extract": {"type": "file", "path": "t.csv"}}],
    }  # fmt: skip
    folder = write_module(tmp_path / "scores", doc, {"t.csv": text})
    result = run_version(folder, "0.0.1", resources, instance, job="scores_prepare_job")
    assert result.success
    clean = materializations(result)[("scores", "clean", "t")]
    assert (clean["dm/rows_extracted"], clean["dm/rows_out"], clean["dm/rejected"]) == (4, 2, 2)
    assert clean["dm/typing_rejected_ragged_row"] == 2
    q = resources["outbox"].read_quarantine("scores", "0.0.1")
    ragged = q[q["reason"] == "ragged_row"]
    assert sorted(json.loads(r)["text"] for r in ragged["record"]) == ["2,bob", "3,cy,4,extra"]
    assert (ragged["rule"] == "format").all()

    (folder / "module.jsonld").write_text(
        (folder / "module.jsonld")
        .read_text()
        .replace('"path": "t.csv"', '"path": "t.csv", "raggedRows": "fail"')
    )
    with pytest.raises(ExtractionError) as info:
        extract_entry(csv_entry("t.csv", raggedRows="fail"), folder)
    message = str(info.value)
    assert "2 rows do not have 3 fields (lines 3, 4)" in message
    assert "2,bob" not in message and "cy,4,extra" not in message


def test_a_byte_outside_the_encoding_is_named_by_line_and_offset(tmp_path):
    lines = [b"id,name"] + [f"{i},name{i}".encode() for i in range(1, 7)] + [b"7,Jos\xe9"]
    (tmp_path / "people.csv").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ExtractionError) as info:
        extract_entry(csv_entry("people.csv"), tmp_path)
    offset = sum(len(line) + 1 for line in lines[:7]) + len(b"7,Jos")
    assert f"people.csv: line 8, byte {offset}: not valid utf-8" in str(info.value)
    assert "Jos" not in str(info.value)
    df = extract_entry(csv_entry("people.csv", encoding="latin-1"), tmp_path)
    assert df["name"].iloc[-1] == "José"
    assert isinstance(df, pd.DataFrame)
