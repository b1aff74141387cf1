"""Published-version retention through the real scheduled job: `keepPublished` lets old versions'
data go — relations, quarantine rows, outbox folders — recorded, and never the current one
(issue 10 item 9)."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import psycopg
import pytest

from etl_assets.cli import main
from etl_assets.metadata.loader import load_module
from etl_assets.publish.postgres import publish
from etl_assets.registry import list_versions
from schedules.retention import VERSION_JOB, VERSION_SCHEDULE, build_retention_jobs
from tests import servers
from tests.helpers import scaffold_module

pg_shards = servers.pg_shards  # two extra databases: here, a sink's own warehouse

VERSIONS = ["1.0.0", "1.0.1", "1.0.2", "1.0.3"]


def shop(tmp_path, keep: str):
    folder = scaffold_module(tmp_path / "mods" / "shop", "shop")
    meta = folder / "module.yaml"
    meta.write_text(meta.read_text() + f"keepPublished: {keep}\n")
    return load_module(folder)


@pytest.fixture
def published(resources, pg_url):
    """shop 1.0.0 … 1.0.3 published (and 1.0.1 re-published last), each with its outbox folder
    and quarantine rows."""
    outbox = resources["outbox"]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for version in [*VERSIONS, "1.0.1"]:
            n = int(version[-1]) + 1
            items = pd.DataFrame({"item_id": range(n)})
            outbox.write_table("shop", version, "items", items)
            quarantine = pd.DataFrame(
                {"table": ["items"], "reason": ["range"], "version": [version]}
            )
            publish(conn, module="shop", version=version, schema="dm_shop", tables={"items": items},
                    quarantine=quarantine, metadata_hash="h")  # fmt: skip
    return resources


def run_job(loaded, resources, dagster_home):
    jobs, schedules = build_retention_jobs([loaded])
    job = next(j for j in jobs if j.name == VERSION_JOB)
    assert VERSION_SCHEDULE in {s.name for s in schedules}
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        return job.execute_in_process(instance=instance, resources=resources, raise_on_error=False)


def state(pg_url) -> dict[str, tuple[str, bool]]:
    with psycopg.connect(pg_url) as conn:
        return {r["version"]: (r["state"], r["current"]) for r in list_versions(conn, "shop")}


def exists(conn, relation: str) -> bool:
    return conn.execute("SELECT to_regclass(%s)", (relation,)).fetchone()[0] is not None


def test_keep_the_last_n_removes_older_versions_data_and_records_it(
    tmp_path, published, pg_url, dagster_home, monkeypatch, capsys
):
    result = run_job(shop(tmp_path, "{versions: 2}"), published, dagster_home)
    assert result.success
    removed = {e.version for e in result.output_for_node("expire_published_versions")}
    assert removed == {"1.0.0", "1.0.1"}  # 1.0.1 was published last, but is not among the top 2
    assert state(pg_url) == {
        "1.0.3": ("published", True),
        "1.0.2": ("published", False),
        "1.0.1": ("expired", False),
        "1.0.0": ("expired", False),
    }
    assert published["outbox"].versions("shop") == ["1.0.2", "1.0.3"]
    with psycopg.connect(pg_url) as conn:
        assert not exists(conn, "dm_shop.items__v1_0_0") and not exists(
            conn, "dm_shop.items__v1_0_1"
        )
        assert exists(conn, "dm_shop.items__v1_0_2")
        assert conn.execute("SELECT count(*) FROM dm_shop.items").fetchone()[0] == 4  # 1.0.3
        quarantined = conn.execute(
            "SELECT DISTINCT version FROM dm_shop__restricted.quarantine ORDER BY 1"
        ).fetchall()
        assert quarantined == [("1.0.2",), ("1.0.3",)]
        events = conn.execute(
            "SELECT version, outcome, body::jsonb #>> '{detail,reason}' FROM dm_audit.events"
            " WHERE action = 'version.retention_delete' ORDER BY version"
        ).fetchall()
    assert events == [
        ("1.0.0", "ok", "not among the 2 highest published versions"),
        ("1.0.1", "ok", "not among the 2 highest published versions"),
    ]
    monkeypatch.setenv("DM_POSTGRES_URL", pg_url)
    assert main(["versions", "shop"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("* 1.0.3      published") and "dm_shop.items__v1_0_3" in lines[1]
    assert lines[4].startswith("  1.0.0      expired") and lines[4].endswith(" -")
    # a second run finds nothing more to do
    again = run_job(shop(tmp_path / "again", "{versions: 2}"), published, dagster_home)
    assert again.success and again.output_for_node("expire_published_versions") == []


def test_keep_by_age_never_removes_the_current_version(tmp_path, published, pg_url, dagster_home):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE dm_registry.versions SET published_at = now() - interval '30 days'")
        conn.execute(
            "UPDATE dm_registry.versions SET published_at = now() - interval '1 day'"
            " WHERE version = '1.0.2'"
        )
    result = run_job(shop(tmp_path, "{days: 7}"), published, dagster_home)
    assert result.success
    assert state(pg_url) == {
        "1.0.3": ("published", True),  # 30 days old, but current
        "1.0.2": ("published", False),  # younger than 7 days
        "1.0.1": ("expired", False),
        "1.0.0": ("expired", False),
    }


def test_a_version_someone_selects_from_is_kept_and_the_run_says_why(
    tmp_path, published, pg_url, dagster_home
):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE VIEW public.pinned AS SELECT * FROM dm_shop.items__v1_0_0")
    result = run_job(shop(tmp_path, "{versions: 2}"), published, dagster_home)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_failure_data.error.message.strip().endswith(
        "shop 1.0.0: dm_shop.items__v1_0_0 is kept: the views public.pinned select from it;"
        " drop them to let it go"
    )
    assert state(pg_url)["1.0.0"] == ("published", False)
    assert state(pg_url)["1.0.1"] == ("expired", False)  # the others still went
    assert "1.0.0" in published["outbox"].versions("shop")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM public.pinned").fetchone()[0] == 1
        outcome = conn.execute(
            "SELECT outcome FROM dm_audit.events WHERE action = 'version.retention_delete'"
            " AND version = '1.0.0'"
        ).fetchall()
    assert outcome == [("error",)]


def test_keep_published_needs_a_limit(tmp_path):
    from etl_assets.errors import MetadataError

    with pytest.raises(MetadataError, match="keepPublished needs versions and/or days"):
        shop(tmp_path, "{}")


def test_the_code_location_has_the_retention_jobs_on_schedules(tmp_path):
    from etl_assets._dagster_private import without_instance_state
    from etl_assets.definitions import build_definitions
    from schedules.retention import OUTBOX_JOB, OUTBOX_SCHEDULE

    shop(tmp_path, "{versions: 3}")
    defs, catalog = build_definitions(tmp_path / "mods")
    assert not catalog.errors, [str(e) for e in catalog.errors]
    # resolving reads the defs state of the instance an earlier test entered: load as a new process
    with without_instance_state():
        defs.get_repository_def()
    assert defs.resolve_job_def(VERSION_JOB).name == VERSION_JOB
    assert defs.resolve_job_def(OUTBOX_JOB).name == OUTBOX_JOB
    version_schedule = defs.resolve_schedule_def(VERSION_SCHEDULE)
    assert (version_schedule.job_name, version_schedule.cron_schedule) == (
        VERSION_JOB,
        "30 * * * *",
    )
    assert defs.resolve_schedule_def(OUTBOX_SCHEDULE).job_name == OUTBOX_JOB
    assert "dm_outbox_retention" not in {s.name for s in defs.sensors or []}


def test_a_sink_on_a_named_connection_loses_old_versions_there(
    tmp_path, resources, pg_url, pg_shards, dagster_home, monkeypatch
):
    from tests.helpers import CONTEXT, run_version, write_module

    [warehouse, _] = pg_shards
    monkeypatch.setenv("DM_TEST_WAREHOUSE_URL", warehouse)
    doc = {
        "@context": CONTEXT,
        "name": "shop",
        "autoUpload": True,
        "keepPublished": {"versions": 1},
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
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        for version in ("1.0.0", "1.0.1"):
            assert run_version(folder, version, resources, instance).success
    result = run_job(load_module(folder), resources, dagster_home)
    assert result.success
    assert [e.version for e in result.output_for_node("expire_published_versions")] == ["1.0.0"]
    with psycopg.connect(warehouse) as conn:
        assert not exists(conn, "sales.items__v1_0_0") and exists(conn, "sales.items__v1_0_1")
        assert conn.execute("SELECT count(*) FROM sales.items").fetchone()[0] == 2
        theirs = {r["version"]: r["state"] for r in list_versions(conn, "shop")}
    assert theirs == {"1.0.1": "published", "1.0.0": "expired"}  # the sink's own registry
    assert state(pg_url) == {"1.0.1": ("published", True), "1.0.0": ("expired", False)}
