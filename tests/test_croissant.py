"""Croissant metadata tried as an ML consumer would: both examples published in two versions,
every version's `croissant.json` loaded with mlcroissant, every record of every record set
compared with the version's PostgreSQL relation and its outbox Parquet."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import shutil
import uuid
from pathlib import Path

import dagster as dg
import mlcroissant as mlc
import pandas as pd
import psycopg
import pyarrow.parquet as pq
import pytest
from mlcroissant._src.core.rdf import make_context
from psycopg import sql

from etl_assets.metadata.loader import load_module
from etl_assets.metadata.module import KeepPublished
from etl_assets.publish.croissant import CROISSANT_CONTEXT, croissant, croissant_type
from etl_assets.publish.croissant_rai import provenance, rai_properties
from etl_assets.publish.postgres import version_table
from etl_assets.results import AnonymizeCounts, TableOutcome
from etl_assets.stages import asset_key
from resources.io_manager import IO_MANAGER_KEY
from tests import conftest
from tests.helpers import run_version

VERSIONS = {"clinic": ["1.0.1", "1.0.2"], "staff_survey": ["2.3.1", "2.3.2"]}


def _drop_a_patient(folder: Path) -> None:
    """A source change between the versions, so that the two differ (one registry patient
    fewer; their visits go as dangling references)."""
    csv = folder / "data" / "patients_registry.csv"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join([lines[0], *lines[2:]]))


@pytest.fixture(scope="module")
def published(tmp_path_factory, pg_server_url):
    """Both examples, two versions each, published into one fresh database."""
    tmp = tmp_path_factory.mktemp("croissant")
    name = f"dmtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(pg_server_url, dbname=name)
    resources = conftest.local_resources(tmp, url)
    checks: dict[tuple[str, str, str], dict] = {}
    (tmp / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp / "instance")) as instance:
        for module, versions in VERSIONS.items():
            shutil.copytree(conftest.EXAMPLES / module, tmp / module)
            for i, version in enumerate(versions):
                if module == "clinic" and i == 1:
                    _drop_a_patient(tmp / module)
                result = run_version(tmp / module, version, resources, instance)
                assert result.success, (module, version)
                for event in result.all_events:
                    if event.event_type_value == "ASSET_CHECK_EVALUATION":
                        ev = event.event_specific_data
                        if ev.check_name == "privacy_models_hold":
                            md = {k: v.value for k, v in ev.metadata.items()}
                            checks[(module, version, ev.asset_key.path[-1])] = md
    yield {"url": url, "tmp": tmp, "resources": resources, "checks": checks}
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _plain(value):
    """A value as both sides can be compared: text decoded, missing as None, dates as dates."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _rows(records: list[dict], columns: list[str]) -> list[tuple]:
    return sorted(
        (tuple(_plain(r[c]) for c in columns) for r in records),
        key=lambda row: tuple("" if v is None else str(v) for v in row),
    )


def _same(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for va, vb in zip(ra, rb, strict=True):
            if isinstance(va, float) and isinstance(vb, float):
                if not math.isclose(va, vb, rel_tol=1e-12, abs_tol=1e-12):
                    return False
            elif isinstance(va, dt.datetime) and isinstance(vb, dt.date):
                if va.date() != (vb if not isinstance(vb, dt.datetime) else vb.date()):
                    return False
            elif va != vb:
                return False
    return True


def _versions(published):
    for module, versions in VERSIONS.items():
        for version in versions:
            folder = published["resources"]["outbox"].local_dir(module, version)
            yield module, version, folder


def test_the_context_is_the_standard_croissant_1_1_context():
    standard = make_context(_V11())
    assert {k: v for k, v in CROISSANT_CONTEXT.items() if k in standard} == standard
    assert set(CROISSANT_CONTEXT) - set(standard) == {"prov", "dm"}


class _V11:
    """What mlcroissant's make_context asks of a context: is it Croissant 1.1."""

    def is_v1_1(self) -> bool:
        return True

    def is_v0(self) -> bool:
        return False


def test_every_record_of_every_version_loads_equal_to_postgres_and_parquet(published):
    compared = 0
    for module, version, folder in _versions(published):
        path = folder / "croissant.json"
        assert path.stat().st_mode & 0o044 == 0o044  # another account can read it
        doc = json.loads(path.read_text())
        dataset = mlc.Dataset(jsonld=str(path))
        issues = dataset.metadata.ctx.issues
        assert not issues.errors and not issues.warnings, (module, version, issues.report())
        schema = f"dm_{module}"
        with psycopg.connect(published["url"]) as conn:
            for record_set in doc["recordSet"]:
                name = record_set["@id"]
                table = pq.read_table(folder / f"{name}.parquet")
                columns = table.schema.names
                assert [f["name"] for f in record_set["field"]] == columns
                # a fresh Dataset per record set: mlcroissant 1.1.1 caches a record set's
                # output in the Dataset, so a second records() call on it reads that cache
                loaded = list(mlc.Dataset(jsonld=str(path)).records(name))
                from_croissant = _rows(
                    [{k.removeprefix(f"{name}/"): v for k, v in r.items()} for r in loaded],
                    columns,
                )
                from_parquet = _rows(table.to_pylist(), columns)
                relation = sql.Identifier(schema, version_table(name, version))
                cur = conn.execute(
                    sql.SQL("SELECT {} FROM {}").format(
                        sql.SQL(", ").join(map(sql.Identifier, columns)), relation
                    )
                )
                from_postgres = _rows([dict(zip(columns, r, strict=True)) for r in cur], columns)
                assert len(from_croissant) == table.num_rows > 0, (module, version, name)
                assert _same(from_croissant, from_parquet), (module, version, name)
                assert _same(from_croissant, from_postgres), (module, version, name)
                compared += len(from_croissant)
    assert compared > 2 * (7 + 80 + 130 + 2900 + 2 * 1200)


def test_versions_differ_and_each_file_describes_its_own(published):
    docs = {
        (m, v): json.loads((folder / "croissant.json").read_text())
        for m, v, folder in _versions(published)
    }
    assert {key: doc["version"] for key, doc in docs.items()} == {k: k[1] for k in docs}
    first, second = (docs[("clinic", v)] for v in VERSIONS["clinic"])
    sha = {d["@id"]: d["sha256"] for d in first["distribution"]}
    assert (
        sha["patients.parquet"]
        != {d["@id"]: d["sha256"] for d in second["distribution"]}["patients.parquet"]
    )
    for doc in docs.values():
        assert all(d["contentUrl"] == d["@id"] for d in doc["distribution"])  # relative
        assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1"
        assert doc["citeAs"] and doc["datePublished"] and doc["license"]
    assert first["license"] == "https://creativecommons.org/licenses/by/4.0/"
    assert first["citeAs"].startswith("@misc{clinic, title={Clinic")  # the module's own
    assert docs[("staff_survey", "2.3.1")]["citeAs"].startswith("@misc{staff_survey_2_3_1,")
    assert "no rights are granted" in docs[("staff_survey", "2.3.1")]["license"]


def _fields(doc: dict, record_set: str) -> dict[str, dict]:
    rs = next(r for r in doc["recordSet"] if r["@id"] == record_set)
    return {f["name"]: f for f in rs["field"]}


def test_types_keys_references_and_descriptions_are_the_published_ones(published):
    folder = published["resources"]["outbox"].local_dir("clinic", "1.0.1")
    doc = json.loads((folder / "croissant.json").read_text())
    patients, visits = _fields(doc, "patients"), _fields(doc, "visits")
    # declared integer and date, published as a pseudonym and a generalized date: text
    assert patients["patient_id"]["dataType"] == "sc:Text"
    assert patients["birth_date"]["dataType"] == "sc:Text"
    assert patients["weight_kg"]["dataType"] == "sc:Float"
    assert visits["visit_id"]["dataType"] == "sc:Integer"
    for name in ("wards", "patients", "visits"):
        arrow = pq.read_schema(folder / f"{name}.parquet")
        assert {f: v["dataType"] for f, v in _fields(doc, name).items()} == {
            n: croissant_type(t) for n, t in zip(arrow.names, arrow.types, strict=True)
        }
    keys = {rs["@id"]: [k["@id"] for k in rs.get("key", [])] for rs in doc["recordSet"]}
    assert keys == {
        "wards": ["wards/ward_id"],
        "patients": ["patients/patient_id"],
        "visits": ["visits/visit_id"],
    }
    assert visits["patient_id"]["references"] == {"field": {"@id": "patients/patient_id"}}
    assert patients["ward_id"]["references"] == {"field": {"@id": "wards/ward_id"}}
    assert "pseudonymized" in patients["patient_id"]["description"]
    staff = json.loads(
        (
            published["resources"]["outbox"].local_dir("staff_survey", "2.3.1") / "croissant.json"
        ).read_text()
    )
    st = next(r for r in staff["recordSet"] if r["@id"] == "sick_leave_st")
    assert [k["@id"] for k in st["key"]] == ["sick_leave_st/group_id", "sick_leave_st/diagnosis"]
    # every declared key is unique in the published data
    for m, v, f in _versions(published):
        for rs in json.loads((f / "croissant.json").read_text())["recordSet"]:
            cols = [k["@id"].split("/", 1)[1] for k in rs.get("key", [])]
            if cols:
                data = pq.read_table(f / f"{rs['@id']}.parquet").to_pandas()
                assert not data.duplicated(cols).any(), (m, v, rs["@id"])


def test_rai_and_provenance_report_what_anonymization_reached_and_no_value(published):
    outbox = published["resources"]["outbox"]
    for module, version, folder in _versions(published):
        doc = json.loads((folder / "croissant.json").read_text())
        loaded = load_module(published["tmp"] / module)
        for table in loaded.model.tables:
            if table.privacy is None:
                continue
            check = published["checks"][(module, version, table.name)]
            rs = next(r for r in doc["recordSet"] if r["@id"] == table.published_names[0])
            reached = [m["dm:reached"] for m in rs["dm:privacyModels"]]
            # the values the blocking outbox check recorded, model by model
            assert sorted(reached) == sorted(check.values()), (module, version, table.name)
        assert doc["rai:dataManipulationProtocol"] and doc["rai:personalSensitiveInformation"]
        # the clean stage's counts per table: extracted = kept + rejected + duplicates merged
        counted = [
            tuple(map(int, m.groups()))
            for line in doc["rai:dataPreprocessingProtocol"]
            if (
                m := re.search(
                    r"(\d+) records extracted, (\d+) kept, (\d+) rejected, (\d+) dup", line
                )
            )
        ]
        assert len(counted) == len(loaded.model.tables)
        assert all(x == k + r + d and x > 0 for x, k, r, d in counted), counted
        activity = doc["prov:wasGeneratedBy"]
        assert activity["@id"].startswith("urn:dagster:run:")
        used = " ".join(u["prov:label"] for u in activity["prov:used"])
        assert all(e.source in used for e in loaded.model.collection)
        assert loaded.hash in json.dumps(activity)
        text = json.dumps(doc)
        assert "path" not in json.dumps(activity["prov:used"])  # sources by name only
        # no value from before anonymization: pseudonymized and suppressed columns' raw values
        words = set(text.replace('"', " ").replace(",", " ").split())
        io = published["resources"][IO_MANAGER_KEY]
        for table in loaded.model.tables:
            hidden = [
                c.name
                for c in table.columns
                if any(op.method in ("pseudonymize", "suppress") for op in c.anonymization)
            ]
            if not hidden:
                continue
            clean = io.read(asset_key(module, "clean", table.name), version)
            for col in hidden:
                raw = {str(v) for v in clean[col].dropna()} - {"*"}
                # ids as whole words (digits occur inside hashes), text anywhere
                found = {v for v in raw if (v in words if v.isdigit() else v in text)}
                assert raw and not found, (module, version, table.name, col, len(found))
        keys = [p.read_text().strip() for p in (published["tmp"] / "secrets").glob("*.key")]
        assert keys and not any(key in text for key in keys)  # the pseudonym key
    # the levels the anonymize stage chose are what the Croissant file says
    doc = json.loads((outbox.local_dir("clinic", "1.0.1") / "croissant.json").read_text())
    birth = _fields(doc, "patients")["birth_date"]["dm:anonymization"]
    assert birth["dm:role"] == ["quasi-identifier"]
    assert birth["dm:operations"][0]["dm:method"] == "generalize"
    assert isinstance(birth["dm:operations"][0]["dm:level"], int)


def _claim_holds(applied: str, values: set[str]) -> bool:
    """What a field's `dm:applied` says of a generalized column, checked on its values."""
    if "every value is '*'" in applied:
        return values <= {"*"}
    if m := re.search(r"of width (\d+(?:\.\d+)?)", applied):
        width = float(m.group(1))
        spans = [re.fullmatch(r"\[(-?[\d.]+), (-?[\d.]+)\)", v) for v in values - {"*"}]
        return all(s and float(s.group(2)) - float(s.group(1)) == width for s in spans)
    if m := re.search(r"the first (\d+) characters kept", applied):
        n = int(m.group(1))
        return all(re.fullmatch(rf"[^*]{{{n}}}\**", v) for v in values - {"*"})
    for unit, pattern in (("month", r"\d{4}-\d{2}"), ("quarter", r"\d{4}-Q\d"), ("year", r"\d{4}")):
        if f"truncated to the {unit}" in applied:
            return all(re.fullmatch(pattern, v) for v in values - {"*"})
    return "level 0" in applied or "hierarchy" in applied


def test_what_the_file_says_of_each_generalized_column_holds_for_its_values(published):
    checked = 0
    for module, version, folder in _versions(published):
        doc = json.loads((folder / "croissant.json").read_text())
        for rs in doc["recordSet"]:
            data = pq.read_table(folder / f"{rs['@id']}.parquet").to_pandas()
            for field in rs["field"]:
                anonymization = field.get("dm:anonymization", {})
                ops = [o for o in anonymization.get("dm:operations", []) if "dm:level" in o]
                if not ops:
                    continue
                values = {str(v) for v in data[field["name"]].dropna()}
                applied = anonymization["dm:applied"]
                assert _claim_holds(applied, values), (module, version, field["@id"], applied)
                checked += 1
    assert checked >= 4 * 3  # birth_date, postcode, visit_time, age, ... in every version


def test_an_upload_in_its_own_run_is_informed_by_the_run_that_prepared_the_version():
    loaded = load_module(conftest.EXAMPLES / "clinic")
    prepared = TableOutcome(counts=AnonymizeCounts(10, 9, 1, 0), run_id="prepare-run")
    prov = provenance(loaded, "1.0.1", {"patients": prepared}, "upload-run")
    activity = prov["prov:wasGeneratedBy"]
    assert activity["@id"] == "urn:dagster:run:upload-run"
    assert [a["@id"] for a in activity["prov:wasInformedBy"]] == ["urn:dagster:run:prepare-run"]
    same = provenance(loaded, "1.0.1", {"patients": prepared}, "prepare-run")
    assert "prov:wasInformedBy" not in same["prov:wasGeneratedBy"]


def test_a_location_an_upload_script_reports_loses_its_password(published):
    loaded = load_module(published["tmp"] / "clinic")
    outbox = published["resources"]["outbox"]
    where = {"patients": "postgresql://loader:hunter2@db.example.org/research"}
    doc = croissant(loaded, "1.0.1", outbox, where)
    assert "hunter2" not in json.dumps(doc)
    described = {d["@id"]: d["description"] for d in doc["distribution"]}
    assert "postgresql://loader:***@db.example.org/research" in described["patients.parquet"]


def test_the_maintenance_plan_says_how_long_versions_stay_readable():
    loaded = load_module(conftest.EXAMPLES / "clinic")
    plan = rai_properties(loaded, {})["rai:dataReleaseMaintenancePlan"]
    assert "Every published version stays readable" in plan and "current.json" in plan
    kept = loaded.model.model_copy(update={"keepPublished": KeepPublished(versions=3, days=90)})
    plan = rai_properties(dataclasses.replace(loaded, model=kept), {})[
        "rai:dataReleaseMaintenancePlan"
    ]
    assert "the 3 highest or those published in the last 90 days" in plan
