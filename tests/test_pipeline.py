"""End to end on the real PostgreSQL: the clinic example through every stage, re-runs, kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pandas as pd
import psycopg
import pytest

from etl_assets.metadata.loader import load_module
from etl_assets.registry import list_versions
from tests.helpers import materializations, run_version


@pytest.fixture
def instance(dagster_home):
    with dg.instance_for_test(temp_dir=str(dagster_home)) as inst:
        yield inst


def count(url: str, relation: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]


def test_clinic_end_to_end(modules_dir, resources, instance, pg_url, tmp_path):
    result = run_version(modules_dir / "clinic", "1.0.1", resources, instance)
    assert result.success
    mats = materializations(result)
    stages = {path[1] for path in mats}
    assert stages == {"extract", "clean", "anonymize", "outbox", "upload"}

    # what the example's defects must do (see datamodules/clinic/README.md)
    patients = mats[("clinic", "clean", "patients")]
    assert patients["dm/rows_extracted"] == 101  # 81 registry rows + 20 legacy
    assert patients["dm/duplicates"] == 1
    assert patients["dm/rejected"] == 17
    assert patients["dm/rows_out"] == 83
    assert (
        patients["dm/rows_extracted"]
        == patients["dm/rows_out"] + patients["dm/rejected"] + patients["dm/duplicates"]
    )
    assert patients["dagster/row_count"] == 83
    # restricted zone: schema and profile, no rows; published zone (outbox): a preview
    assert "dagster/column_schema" in patients and "dm/profile" in patients
    assert "preview" not in patients and "preview" in mats[("clinic", "outbox", "patients")]
    # k-anonymity (k=3) suppresses what it must, within the 10% limit
    anonymized = mats[("clinic", "anonymize", "patients")]
    suppressed = int(anonymized["dm/suppressed_records"])
    assert 0 <= suppressed <= 8

    # the published versions are what the outbox holds
    assert count(pg_url, "dm_clinic.patients") == 83 - suppressed
    assert count(pg_url, "dm_clinic.wards") == 7
    # visits of a suppressed patient are removed too (and quarantined): no dangling references
    orphaned = mats[("clinic", "anonymize", "visits")]["dm/rejected_parent_suppressed"]
    assert (orphaned > 0) == (suppressed > 0)
    visits_out = mats[("clinic", "clean", "visits")]["dm/rows_out"]
    visits_suppressed = int(mats[("clinic", "anonymize", "visits")]["dm/suppressed"])
    assert count(pg_url, "dm_clinic.visits") == visits_out - orphaned - visits_suppressed

    # every rejected record is in the quarantine, with its reason, on disk and in PostgreSQL
    q = resources["outbox"].read_quarantine("clinic", "1.0.1")
    rejected = q[q["action"] == "rejected"]
    # every rejected record, plus the duplicate merged, plus the records anonymization suppressed
    assert (
        len(rejected[rejected["table"] == "patients"]) == patients["dm/rejected"] + 1 + suppressed
    )
    assert (rejected["reason"] == "suppressed").sum() == suppressed + visits_suppressed
    assert (rejected["reason"] == "parent_suppressed").sum() == orphaned
    reasons = set(zip(rejected["rule"], rejected["value"], strict=True))
    assert ("foreignKey", "W-XXX") in reasons  # dangling ward
    assert ("type", "abc") in reasons  # patient_id that is not an integer
    assert ("range", "2031-05-01") in reasons  # birth date in the future
    assert count(pg_url, "dm_clinic__restricted.quarantine") == len(q)

    # the outbox has Parquet per table, the metadata snapshot and Croissant metadata
    vdir = resources["outbox"].local_dir("clinic", "1.0.1")
    assert {p.name for p in vdir.glob("*.parquet")} == {
        "wards.parquet",
        "patients.parquet",
        "visits.parquet",
    }
    snapshot = json.loads((vdir / "datamodule.jsonld").read_text())
    assert snapshot["version"] == "1.0.1"
    croissant = json.loads((vdir / "croissant.json").read_text())
    assert croissant["version"] == "1.0.1"
    assert {rs["name"] for rs in croissant["recordSet"]} == {"wards", "patients", "visits"}

    # anonymization: names suppressed, ids pseudonymized but still joinable
    with psycopg.connect(pg_url) as conn:
        names = {r[0] for r in conn.execute("SELECT DISTINCT full_name FROM dm_clinic.patients")}
        orphans = conn.execute(
            "SELECT count(*) FROM dm_clinic.visits v"
            " LEFT JOIN dm_clinic.patients p USING (patient_id) WHERE p.patient_id IS NULL"
        ).fetchone()[0]
    assert names <= {"*", None}
    assert orphans == 0


def test_rerun_of_a_version_adds_no_duplicates(modules_dir, resources, instance, pg_url):
    folder = modules_dir / "clinic"
    assert run_version(folder, "1.0.1", resources, instance).success
    first = count(pg_url, "dm_clinic.patients__v1_0_1")
    assert run_version(folder, "1.0.1", resources, instance).success
    assert count(pg_url, "dm_clinic.patients__v1_0_1") == first
    assert count(pg_url, "dm_clinic.patients") == first
    with psycopg.connect(pg_url) as conn:
        versions = list_versions(conn, "clinic")
    assert [v["version"] for v in versions] == ["1.0.1"]


def test_metadata_change_marks_assets_changed(modules_dir):
    before = load_module(modules_dir / "clinic")
    path = modules_dir / "clinic" / "module.jsonld"
    doc = json.loads(path.read_text())
    doc["tables"][0]["columns"][2]["range"]["max"] = 150
    path.write_text(json.dumps(doc))
    after = load_module(modules_dir / "clinic")
    assert before.code_version != after.code_version


def test_failed_run_leaves_last_published_version(modules_dir, resources, instance, pg_url):
    folder = modules_dir / "clinic"
    assert run_version(folder, "1.0.1", resources, instance).success
    published = count(pg_url, "dm_clinic.visits")
    # the next version's source is broken: the run fails before upload
    (folder / "data" / "visits.jsonl").write_text('{"visit_id": 1}\nthis is not json\n')
    result = run_version(folder, "1.0.2", resources, instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "line 2 of the JSON Lines output is not JSON" in failure.step_failure_data.error.message
    assert count(pg_url, "dm_clinic.visits") == published
    with psycopg.connect(pg_url) as conn:
        assert [v["version"] for v in list_versions(conn, "clinic")] == ["1.0.1"]


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np, pandas as pd, psycopg
    from etl_assets.publish.postgres import publish
    n = 3_000_000
    df = pd.DataFrame({"id": np.arange(n), "value": np.random.default_rng(0).random(n),
                       "label": pd.Series(np.arange(n) % 97).astype(str)})
    with psycopg.connect(sys.argv[1], autocommit=True, application_name="dm_kill_test") as conn:
        publish(conn, module="big", version="1.0.2", schema="dm_big", tables={"t": df},
                quarantine=None, metadata_hash="h2")
    """
)


def test_killed_upload_leaves_previous_version_readable(pg_url, tmp_path):
    from etl_assets.publish.postgres import publish

    old = pd.DataFrame({"id": [1, 2, 3], "value": [0.1, 0.2, 0.3], "label": ["a", "b", "c"]})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        publish(conn, module="big", version="1.0.1", schema="dm_big", tables={"t": old},
                quarantine=None, metadata_hash="h1")  # fmt: skip
    script = tmp_path / "publish_big.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), pg_url], env=os.environ.copy())
    try:
        deadline = time.time() + 60
        copying = False
        with psycopg.connect(pg_url, autocommit=True) as watch:
            while time.time() < deadline and proc.poll() is None:
                row = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dm_kill_test'"
                    " AND query LIKE 'COPY%%'"
                ).fetchone()
                if row[0]:
                    copying = True
                    break
                time.sleep(0.05)
        assert copying, "the upload never reached COPY"
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.5)  # the server notices the dead client and rolls its transaction back
    assert count(pg_url, "dm_big.t") == 3
    with psycopg.connect(pg_url) as conn:
        assert [v["version"] for v in list_versions(conn, "big")] == ["1.0.1"]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'dm_big'"
            )
        }
    assert "t__v1_0_2" not in tables


def test_staff_survey_publishes_what_its_privacy_models_promise(
    modules_dir, resources, instance, pg_url
):
    """Every anonymization operation at once; the published data is checked independently."""
    from pycanon import anonymity

    result = run_version(modules_dir / "staff_survey", "2.3.1", resources, instance)
    assert result.success
    checks = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert checks and all(c.passed for c in checks), [c.description for c in checks]
    with psycopg.connect(pg_url) as conn:
        responses = pd.read_sql("SELECT * FROM dm_staff_survey.responses", conn)
        qit = pd.read_sql("SELECT * FROM dm_staff_survey.sick_leave_qit", conn)
        st = pd.read_sql("SELECT * FROM dm_staff_survey.sick_leave_st", conn)
    qis = ["age", "gender", "postcode", "department"]
    assert anonymity.k_anonymity(responses, qis) >= 5
    assert anonymity.l_diversity(responses, qis, ["salary_band"]) >= 2
    assert responses["employee_id"].str.fullmatch(r"[0-9a-f]{32}").all()  # pseudonyms
    assert set(responses["satisfaction"]) <= {1, 2, 3, 4, 5}  # permuted, not invented
    # anatomization: diagnoses only in the ST, every group 3-diverse, QIT and ST joined by group
    assert "diagnosis" not in qit.columns
    assert st.groupby("group_id")["diagnosis"].nunique().min() >= 3
    assert set(qit["group_id"]) == set(st["group_id"])
    assert (qit["days_absent"] % 5 == 0).all()  # rounded to base 5
    assert qit["age"].str.fullmatch(r"\[\d+, \d+\)").all()  # 10-year intervals


def test_unsatisfiable_privacy_model_fails_the_version_and_says_by_how_much(
    modules_dir, resources, instance, pg_url
):
    path = modules_dir / "staff_survey" / "module.jsonld"
    doc = json.loads(path.read_text())
    privacy = doc["tables"][0]["privacy"]
    privacy["models"] = [{"type": "k-anonymity", "k": 4000}]
    privacy["suppressionLimit"] = 0.01
    path.write_text(json.dumps(doc))
    result = run_version(modules_dir / "staff_survey", "2.3.1", resources, instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "k-anonymity k=4000" in message
    assert "suppression limit is 1%" in message
    with psycopg.connect(pg_url) as conn:
        assert list_versions(conn, "staff_survey") == []


def test_postgres_sink_with_a_named_connection_publishes_there(
    tmp_path, resources, instance, pg_url, pg_server_url, monkeypatch
):
    import uuid

    from tests.helpers import CONTEXT, write_module

    name = f"dmsink_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    warehouse = psycopg.conninfo.make_conninfo(pg_server_url, dbname=name)
    monkeypatch.setenv("DM_TEST_WAREHOUSE_URL", warehouse)
    doc = {
        "@context": CONTEXT,
        "name": "shop",
        "autoUpload": True,
        "connections": [
            {"name": "warehouse", "type": "postgres", "urlEnv": "DM_TEST_WAREHOUSE_URL"}
        ],
        "tables": [{"name": "items", "columns": [{"name": "id", "dataType": "integer"}]}],
        "collection": [
            {"table": "items", "source": "csv", "extract": {"type": "file", "path": "i.csv"}}
        ],
        "upload": {"sink": {"type": "postgres", "connection": "warehouse", "schema": "sales"}},
    }
    folder = write_module(tmp_path / "shop", doc, {"i.csv": "id\n1\n2\n"})
    try:
        assert run_version(folder, "0.0.1", resources, instance).success
        assert count(warehouse, "sales.items") == 2
        with psycopg.connect(pg_url) as conn:  # the deployment's registry knows where it went
            [row] = list_versions(conn, "shop")
        assert name in row["location"] and "schema sales" in row["location"]
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
