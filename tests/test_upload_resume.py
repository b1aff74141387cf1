"""A retried upload completes a version whose sink committed before its run was killed (issue
10.1): the state such a kill leaves — the version's tables and registry row committed, no
`croissant.json` yet — is finished without loading the tables again."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from etl_assets.publish.croissant import CROISSANT_FILE
from tests.helpers import materializations, run_version


@pytest.fixture
def instance(dagster_home):
    with dg.instance_for_test(temp_dir=str(dagster_home)) as inst:
        yield inst


def table_oid(url: str, relation: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT %s::regclass::oid", (relation,)).fetchone()[0]


def test_upload_after_a_kill_past_commit_writes_metadata_without_reloading(
    modules_dir, resources, instance, pg_url
):
    folder = modules_dir / "clinic"
    assert run_version(folder, "1.0.1", resources, instance).success
    outbox = resources["outbox"]
    croissant = outbox.local_dir("clinic", "1.0.1") / CROISSANT_FILE
    loaded_oid = table_oid(pg_url, "dm_clinic.patients__v1_0_1")
    croissant.unlink()  # what a kill between the COMMIT and the end of the step leaves

    result = run_version(folder, "1.0.1", resources, instance, job="clinic_upload_job")
    assert result.success
    assert croissant.is_file()
    assert table_oid(pg_url, "dm_clinic.patients__v1_0_1") == loaded_oid  # not loaded again
    upload = materializations(result)[("clinic", "upload", "patients")]
    assert upload["dm/inserted_rows"] == 0
    assert upload["dagster/row_count"] > 0

    # a complete version published again is loaded again (a deliberate re-publication)
    assert run_version(folder, "1.0.1", resources, instance, job="clinic_upload_job").success
    assert table_oid(pg_url, "dm_clinic.patients__v1_0_1") != loaded_oid
