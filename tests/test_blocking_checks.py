"""Every blocking check stops the upload when it fails: each test breaks one stage on purpose
(a defect the check exists to catch) and asserts that nothing is published."""

from __future__ import annotations

import dataclasses

import dagster as dg
import pandas as pd
import psycopg
import pytest

import etl_assets.anonymize.assets as anonymize_assets
import etl_assets.clean.assets as clean_assets
from etl_assets.registry import list_versions
from tests.helpers import materializations, run_version


@pytest.fixture
def instance(dagster_home):
    with dg.instance_for_test(temp_dir=str(dagster_home)) as inst:
        yield inst


def check_results(
    result: dg.ExecuteInProcessResult,
) -> dict[tuple[str, str, str], dg.AssetCheckEvaluation]:
    out = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            out[(ev.asset_key.path[1], ev.asset_key.path[2], ev.check_name)] = ev
    return out


def assert_not_published(result: dg.ExecuteInProcessResult, pg_url: str) -> None:
    assert not any(path[1] == "upload" for path in materializations(result))
    with psycopg.connect(pg_url) as conn:
        assert list_versions(conn, "clinic") == []


def break_clean(monkeypatch, table: str, change) -> None:
    """Wrap the clean stage so that `change(result)` corrupts `table`'s result."""
    real = clean_assets.clean_table

    def broken(frames, t, *args, **kwargs):
        result = real(frames, t, *args, **kwargs)
        return change(result) if t.name == table else result

    monkeypatch.setattr(clean_assets, "clean_table", broken)


def test_a_record_lost_without_a_reason_stops_the_upload(
    monkeypatch, modules_dir, resources, instance, pg_url
):
    def lose_one(result):
        result.data = result.data.iloc[1:].reset_index(drop=True)  # not counted, not quarantined
        return result

    break_clean(monkeypatch, "wards", lose_one)
    result = run_version(modules_dir / "clinic", "1.0.1", resources, instance)
    check = check_results(result)[("clean", "wards", "rows_conserved")]
    assert not check.passed
    assert "the clean data has 6 rows, the counts say 7" in check.description
    assert_not_published(result, pg_url)


def test_a_duplicate_key_stops_the_upload(monkeypatch, modules_dir, resources, instance, pg_url):
    def duplicate(result):
        result.data = pd.concat([result.data, result.data.iloc[:1]], ignore_index=True)
        c = result.counts  # counted as if it had been extracted, so conservation still holds
        result.counts = dataclasses.replace(
            c, rows_out=c.rows_out + 1, rows_extracted=c.rows_extracted + 1
        )
        return result

    break_clean(monkeypatch, "patients", duplicate)
    result = run_version(modules_dir / "clinic", "1.0.1", resources, instance)
    checks = check_results(result)
    assert checks[("clean", "patients", "rows_conserved")].passed
    assert not checks[("clean", "patients", "primary_key_unique")].passed
    assert "2 records share a primary key (patient_id)" in (
        checks[("clean", "patients", "primary_key_unique")].description
    )
    assert_not_published(result, pg_url)


def test_a_dangling_reference_stops_the_upload(
    monkeypatch, modules_dir, resources, instance, pg_url
):
    def dangle(result):
        ward = result.data["ward_id"].copy()
        ward.iloc[0] = "W-NOWHERE"
        result.data["ward_id"] = ward
        return result

    break_clean(monkeypatch, "patients", dangle)
    result = run_version(modules_dir / "clinic", "1.0.1", resources, instance)
    checks = check_results(result)
    assert checks[("clean", "patients", "rows_conserved")].passed
    check = checks[("clean", "patients", "foreign_keys_resolve")]
    assert not check.passed
    assert "1 value(s) of ward_id not in wards.ward_id" in check.description
    assert_not_published(result, pg_url)


def test_data_that_breaks_the_privacy_model_stops_the_upload(
    monkeypatch, modules_dir, resources, instance, pg_url
):
    real = anonymize_assets.anonymize_for_module

    def leaky(clean, table, loaded, version, key):
        out = real(clean, table, loaded, version, key)
        if table.name == "patients":  # publish the exact birth dates and postcodes
            exact = clean.reset_index(drop=True)
            for column in ("birth_date", "postcode"):
                out.tables["patients"][column] = (
                    exact[column]
                    .astype("string[pyarrow]")[: len(out.tables["patients"])]
                    .to_numpy()
                )
        return out

    monkeypatch.setattr(anonymize_assets, "anonymize_for_module", leaky)
    result = run_version(modules_dir / "clinic", "1.0.1", resources, instance)
    check = check_results(result)[("outbox", "patients", "privacy_models_hold")]
    assert not check.passed
    assert "k-anonymity" in check.description
    assert_not_published(result, pg_url)


def test_counts_that_are_not_recorded_cannot_pass_as_zero():
    """A renamed or missing counter is an error for the check, never '0 extracted, 0 out'."""
    from etl_assets.results import CleanCounts, StageResultMissing

    counts = CleanCounts(rows_extracted=9, rows_out=7, rejected=2, duplicates=0)
    assert CleanCounts.from_metadata(counts.to_metadata()) == counts
    renamed = {k.replace("rows_out", "rows_kept"): v for k, v in counts.to_metadata().items()}
    with pytest.raises(StageResultMissing, match="dm/rows_out"):
        CleanCounts.from_metadata(renamed)


def test_a_record_anonymization_loses_without_a_reason_stops_the_upload(
    monkeypatch, modules_dir, resources, instance, pg_url
):
    real = anonymize_assets.drop_orphans

    def lossy(tables, table, parents, version):
        out, orphans = real(tables, table, parents, version)
        if table.name == "visits":  # one record gone, neither published nor quarantined
            out = {name: df.iloc[1:].reset_index(drop=True) for name, df in out.items()}
        return out, orphans

    monkeypatch.setattr(anonymize_assets, "drop_orphans", lossy)
    result = run_version(modules_dir / "clinic", "1.0.1", resources, instance)
    check = check_results(result)[("anonymize", "visits", "rows_conserved")]
    assert not check.passed
    assert "published" in check.description and "suppressed" in check.description
    assert_not_published(result, pg_url)
