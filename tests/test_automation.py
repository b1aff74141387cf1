"""Schedules and sensors built from module metadata add the next version and request its run."""

from __future__ import annotations

import datetime as dt
import json
import os
import time

import dagster as dg

from etl_assets.metadata.loader import load_module
from resources import PostgresResource
from resources.deployment import SecretsResource
from schedules import build_schedule
from sensors import build_source_sensor
from tests.conftest import EXAMPLES


def test_schedule_adds_the_next_version_and_runs_it(tmp_path, pg_url):
    loaded = load_module(EXAMPLES / "clinic")
    schedule = build_schedule(loaded)
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING  # status: released
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("clinic_versions", ["1.0.1", "1.0.7"])
        ctx = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 11, 24, 2, tzinfo=dt.UTC),
            resources={"postgres": PostgresResource(url=pg_url)},
        )
        request = schedule(ctx)
        assert request.partition_key == "1.0.8"
        assert "1.0.8" in instance.get_dynamic_partitions("clinic_versions")


def test_schedule_window_is_respected(tmp_path, pg_url):
    path = tmp_path / "clinic"
    doc = json.loads((EXAMPLES / "clinic" / "module.jsonld").read_text())
    doc["schedule"].update(start="2027-01-01T00:00:00", end="2027-12-31T00:00:00")
    path.mkdir()
    for sub in ("data", "scripts"):
        (path / sub).symlink_to(EXAMPLES / "clinic" / sub)
    (path / "module.jsonld").write_text(json.dumps(doc))
    schedule = build_schedule(load_module(path))
    with dg.instance_for_test() as instance:
        ctx = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 11, 24, 2, tzinfo=dt.UTC),
            resources={"postgres": PostgresResource(url=pg_url)},
        )
        skip = schedule(ctx)
        assert isinstance(skip, dg.SkipReason)
        assert "before the schedule window starts" in skip.skip_message


def test_source_change_sensor_runs_a_new_version_when_a_file_changes(modules_dir, pg_url):
    loaded = load_module(modules_dir / "clinic")
    sensor = build_source_sensor(loaded)
    res = {"postgres": PostgresResource(url=pg_url), "secrets": SecretsResource()}
    with dg.instance_for_test() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=res))
        assert not first.run_requests  # the first tick only records the sources
        cursor = first.cursor
        unchanged = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=cursor, resources=res)
        )
        assert not unchanged.run_requests
        wards = modules_dir / "clinic" / "data" / "wards.csv"
        wards.write_text(wards.read_text() + "W-DER,Dermatology,14,internal medicine\n")
        later = time.time() + 5
        os.utime(wards, (later, later))
        changed = sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=res))
        assert [r.partition_key for r in changed.run_requests] == ["1.0.1"]
        assert changed.dynamic_partitions_requests[0].partition_keys == ["1.0.1"]
        assert changed.cursor != cursor


def test_unpublished_outbox_versions_expire_after_retention(tmp_path, pg_url, dagster_home):
    import pandas as pd
    import psycopg

    from etl_assets.publish.postgres import publish
    from resources import OutboxResource, PostgresResource
    from schedules.retention import OUTBOX_JOB, OUTBOX_SCHEDULE, build_retention_jobs

    loaded = load_module(EXAMPLES / "clinic")  # retentionDays: 30
    outbox = OutboxResource(root=str(tmp_path / "outbox"))
    postgres = PostgresResource(url=pg_url)
    frame = pd.DataFrame({"id": [1]})
    for version in ("1.0.1", "1.0.2", "1.0.3"):
        outbox.write_table("clinic", version, "wards", frame)
    old = time.time() - 40 * 86_400
    for version in ("1.0.1", "1.0.2"):  # 1.0.1 published, 1.0.2 never was
        for path in (tmp_path / "outbox" / "published" / "clinic" / version).rglob("*"):
            os.utime(path, (old, old))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        publish(conn, module="clinic", version="1.0.1", schema="dm_clinic",
                tables={"wards": frame}, quarantine=None, metadata_hash="h")  # fmt: skip
    jobs, schedules = build_retention_jobs([loaded])
    assert [j.name for j in jobs] == [OUTBOX_JOB]  # no module keeps a limited number published
    [schedule] = schedules
    assert (schedule.name, schedule.cron_schedule) == (OUTBOX_SCHEDULE, "0 * * * *")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        result = jobs[0].execute_in_process(
            instance=instance, resources={"outbox": outbox, "postgres": postgres}
        )
    assert result.success
    [expired] = result.output_for_node("expire_outbox_versions")
    assert (expired.module, expired.version) == ("clinic", "1.0.2")
    assert expired.reason.startswith("not published after 40.0 days")
    assert outbox.versions("clinic") == ["1.0.1", "1.0.3"]
    logs = [e.message for e in result.all_events if e.event_type_value == "ENGINE_EVENT"] + [
        r.user_message for r in instance.all_logs(result.run_id)
    ]
    assert any("expired outbox version clinic 1.0.2: not published after" in m for m in logs)
    with psycopg.connect(pg_url) as conn:
        events = conn.execute(
            "SELECT actor, version, outcome FROM dm_audit.events"
            " WHERE action = 'version.retention_delete'"
        ).fetchall()
    assert events == [("system:retention", "1.0.2", "ok")]


def test_approval_launches_the_upload_job(tmp_path, pg_url):
    from etl_assets.definitions import build_definitions
    from etl_assets.registry import approve
    from resources import PostgresResource

    folder = tmp_path / "clinic"
    doc = json.loads((EXAMPLES / "clinic" / "module.jsonld").read_text())
    doc["autoUpload"] = False
    folder.mkdir()
    for sub in ("data", "scripts"):
        (folder / sub).symlink_to(EXAMPLES / "clinic" / sub)
    (folder / "module.jsonld").write_text(json.dumps(doc))
    defs, _ = build_definitions(tmp_path)
    with dg.instance_for_test():  # resolving the definitions reads the instance's defs state
        sensor = defs.get_sensor_def("dm_approved_uploads")
    postgres = PostgresResource(url=pg_url)
    instance = dg.DagsterInstance.ephemeral()
    ctx = dg.build_sensor_context(instance=instance, resources={"postgres": postgres})
    assert isinstance(sensor(ctx), dg.SkipReason)
    with postgres.connect(autocommit=True) as conn:
        approve(conn, "clinic", "1.0.4", by="manager@example.org")
    ctx = dg.build_sensor_context(instance=instance, resources={"postgres": postgres})
    requests = sensor(ctx)
    assert [(r.job_name, r.partition_key) for r in requests] == [("clinic_upload_job", "1.0.4")]
    # the console launched the upload itself after approving: the sensor does not run a second
    instance.add_run(
        dg.DagsterRun(job_name="clinic_upload_job", tags={"dagster/partition": "1.0.4"})
    )
    ctx = dg.build_sensor_context(instance=instance, resources={"postgres": postgres})
    assert isinstance(sensor(ctx), dg.SkipReason)
