"""Run control through the real instance: a DAGSTER_HOME instance, the project's workspace file
loaded as `dmetl serve` loads it (a code-location gRPC server), runs launched by the run launcher.

pause/resume/skip change what the daemon would run; cancel terminates a launched run; retry
re-executes from failure and keeps the finished steps; stop --discard throws a version away."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import dagster as dg
import pandas as pd
import psycopg
import pytest

from etl_assets import audit, registry
from etl_assets._dagster_private import workspace_from_file
from etl_assets.cli import main as dmetl
from etl_assets.cli.runs import run_module
from etl_assets.cli.session import Session
from etl_assets.definitions import load_catalog
from etl_assets.orchestration import control
from etl_assets.orchestration.versions import VersionRefused, allocate
from resources import PostgresResource
from resources.deployment import current
from schedules import build_schedule
from tests.conftest import ROOT
from tests.helpers import CONTEXT, write_module

pytestmark = pytest.mark.integration
MODULE = "ctl"
DOC = {
    "@context": CONTEXT,
    "@type": "DataModule",
    "name": MODULE,
    "version": "1.0.0",
    "autoUpload": True,
    "status": "released",  # the schedule runs by default; the source sensor does not
    "schedule": {"cron": "0 3 * * *", "timezone": "UTC"},
    "retry": {"maxRetries": 0},
    "execution": {"executor": "in_process"},
    "tables": [
        {
            "name": "items",
            "columns": [
                {"name": "item_id", "dataType": "integer"},
                {"name": "label", "dataType": "string"},
            ],
        }
    ],
    "collection": [
        {
            "table": "items",
            "source": "a",
            "priority": 2,
            "extract": {"type": "script", "path": "a.py"},
        },
        {
            "table": "items",
            "source": "b",
            "priority": 1,
            "extract": {"type": "script", "path": "b.py"},
        },
    ],  # fmt: skip
}
# source a does what mode.txt says: fail, take a minute, or succeed
SOURCE_A = """import json, pathlib, sys, time
mode = (pathlib.Path(__file__).parent / "mode.txt").read_text().strip()
if mode == "fail":
    sys.exit("source a is down")
if mode == "slow":
    time.sleep(60)
print(json.dumps([{"item_id": 1, "label": "a"}]))
"""
SOURCE_B = 'import json\nprint(json.dumps([{"item_id": 2, "label": "b"}]))\n'


@pytest.fixture(scope="module")
def node(tmp_path_factory, pg_server_url):
    """An instance (runs launched at once by the default coordinator and launcher), the module,
    PostgreSQL, and the project's workspace loaded on that instance."""
    tmp = tmp_path_factory.mktemp("control")
    home = tmp / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(  # no daemon here: submitted runs launch at once
        "run_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: DefaultRunCoordinator\ntelemetry:\n  enabled: false\n"
    )
    write_module(tmp / "mods" / MODULE, DOC, {"a.py": SOURCE_A, "b.py": SOURCE_B})
    (tmp / "mods" / MODULE / "mode.txt").write_text("fail")
    name = f"dmtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    pg_url = psycopg.conninfo.make_conninfo(pg_server_url, dbname=name)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "DAGSTER_HOME": str(home),
            "DM_MODULES_DIR": str(tmp / "mods"),
            "DM_POSTGRES_URL": pg_url,
            "DM_OUTBOX_ROOT": str(tmp / "outbox"),
            "DM_STORAGE_ROOT": str(tmp / "storage"),
        }.items():
            mp.setenv(key, value)
        session = Session(current())
        with workspace_from_file(session.instance, str(ROOT / "workspace.yaml")) as workspace:
            assert not workspace.code_location_errors(), workspace.code_location_errors()
            yield session, workspace, tmp / "mods" / MODULE, pg_url
        session.instance.dispose()
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for(instance: dg.DagsterInstance, run_id: str, statuses, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.status in statuses:
            return run
        time.sleep(0.5)
    pytest.fail(f"run {run_id} is still {run.status}")


def succeeded_steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records
    return {r.event_log_entry.step_key for r in records}


def events(pg_url: str, action: str) -> list[dict]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return audit.query(conn, action=action, limit=10)


def test_pause_resume_and_skip_the_next_tick(node, capsys):
    session, workspace, _, pg_url = node
    instance = session.instance
    states = lambda: {n: r for n, _, r in control.status(instance, workspace, MODULE)}  # noqa: E731
    assert states() == {f"{MODULE}_schedule": True, f"{MODULE}_source_changes": False}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        changes = control.pause(instance, workspace, conn, MODULE, "ana")
        assert {c.name: (c.was_running, c.running) for c in changes} == {
            f"{MODULE}_schedule": (True, False),
            f"{MODULE}_source_changes": (False, False),
        }
        assert states() == {f"{MODULE}_schedule": False, f"{MODULE}_source_changes": False}
        # resume starts what the pause stopped, and leaves the sensor nobody had turned on off
        control.resume(instance, workspace, conn, MODULE)
        assert states() == {f"{MODULE}_schedule": True, f"{MODULE}_source_changes": False}

    # skip: the next tick is skipped and says who asked; the tick after it runs
    assert dmetl(["skip", MODULE]) == 0
    now = dt.datetime.now(dt.UTC)
    next_3am = now.replace(hour=3, minute=0, second=0, microsecond=0)
    next_3am += dt.timedelta(days=1) if next_3am <= now else dt.timedelta()
    assert f"tick at {next_3am.isoformat(timespec='minutes')} will be skipped" in (
        capsys.readouterr().out
    )
    [event] = events(pg_url, "schedule.skip")
    assert (event["module"], event["outcome"], event["role"]) == (MODULE, "ok", "cli")
    schedule = build_schedule(load_catalog(node[2].parent).module(MODULE).loaded)
    res = {"postgres": PostgresResource(url=pg_url)}
    ticks = [dt.datetime(2026, 12, 1 + d, 3, tzinfo=dt.UTC) for d in range(2)]
    first, second = (
        schedule(dg.build_schedule_context(instance, scheduled_execution_time=t, resources=res))
        for t in ticks
    )
    assert isinstance(first, dg.SkipReason)
    assert "skipped on request of" in first.skip_message
    again = schedule(  # the daemon evaluating the same tick again: still skipped
        dg.build_schedule_context(instance, scheduled_execution_time=ticks[0], resources=res)
    )
    assert isinstance(again, dg.SkipReason)
    assert isinstance(second, dg.RunRequest)

    assert dmetl(["pause", MODULE]) == 0
    assert states()[f"{MODULE}_schedule"] is False
    assert dmetl(["resume", MODULE]) == 0
    assert states()[f"{MODULE}_schedule"] is True
    assert [e["outcome"] for e in events(pg_url, "module.pause")] == ["ok"]
    assert dmetl(["skip", "no_such_module"]) == 1  # refused, and audited as such
    assert events(pg_url, "schedule.skip")[0]["outcome"] == "error"


def test_cancel_then_retry_from_failure_keeps_finished_steps(node):
    session, workspace, folder, pg_url = node
    instance = session.instance
    module = load_catalog(folder.parent).module(MODULE)
    first = run_module(session, module)  # what `dmetl run` does: source a fails
    assert not first.success
    version = first.version
    assert instance.get_run_by_id(first.run_id).remote_job_origin is None  # no launcher's run
    finished = succeeded_steps(instance, first.run_id)
    assert f"{MODULE}__extract__items__b" in finished  # source b's extraction succeeded

    (folder / "mode.txt").write_text("slow")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        slow = control.retry(instance, workspace, conn, MODULE, version)
        assert slow.parent_run_id == first.run_id
        assert not finished & set(slow.steps)  # finished steps are not run again
        wait_for(instance, slow.run_id, [dg.DagsterRunStatus.STARTED])
        with pytest.raises(control.ControlRefused, match="still in progress"):
            control.retry(instance, workspace, conn, MODULE, version)
        assert dmetl(["cancel", slow.run_id]) == 0
        wait_for(instance, slow.run_id, [dg.DagsterRunStatus.CANCELED])
        assert events(pg_url, "run.cancel")[0]["run_id"] == slow.run_id

        # stop (without --discard): the version's active run is canceled, nothing deleted
        again = control.retry(instance, workspace, conn, MODULE, version)
        wait_for(instance, again.run_id, [dg.DagsterRunStatus.STARTED])
        assert dmetl(["stop", MODULE, version]) == 0
        wait_for(instance, again.run_id, [dg.DagsterRunStatus.CANCELED])
        assert events(pg_url, "version.stop")[0]["outcome"] == "ok"
        assert not registry.is_discarded(conn, MODULE, version)

        (folder / "mode.txt").write_text("ok")
        assert dmetl(["retry", MODULE, version]) == 0
        [event] = events(pg_url, "run.retry")
        done = wait_for(instance, event["run_id"], [dg.DagsterRunStatus.SUCCESS,
                                                    dg.DagsterRunStatus.FAILURE])  # fmt: skip
        assert done.status == dg.DagsterRunStatus.SUCCESS
        assert done.parent_run_id == again.run_id and done.root_run_id == first.run_id
        ran = succeeded_steps(instance, done.run_id)
        assert f"{MODULE}__upload" in ran and not finished & ran
        assert registry.is_published(conn, MODULE, version)
        with pytest.raises(control.ControlRefused, match="succeeded"):
            control.retry(instance, workspace, conn, MODULE, version)
        with pytest.raises(control.ControlRefused, match="already ended"):
            control.cancel(instance, done.run_id)


def test_stop_discards_an_unpublished_version_and_never_a_published_one(node):
    session, _, folder, pg_url = node
    instance, outbox = session.instance, session.outbox
    loaded = load_catalog(folder.parent).module(MODULE).loaded
    postgres = PostgresResource(url=pg_url)
    version = allocate(instance, postgres, loaded, trigger="test")
    frame = pd.DataFrame({"item_id": [1]})
    outbox.write_table(MODULE, version, "items", frame)
    outbox.write_quarantine(MODULE, version, "items", frame)
    storage = session._ready("dm_io_manager")
    step = storage.path_for(dg.AssetKey([MODULE, "clean", "items"]), version)
    step.parent.mkdir(parents=True, exist_ok=True)
    step.with_name(f"{version}.parquet").write_bytes(b"x")
    plan = storage.path_for(dg.AssetKey(["_kafka_plans", MODULE]), version) / "items__k.json"
    plan.parent.mkdir(parents=True)
    plan.write_text("{}")

    assert dmetl(["stop", MODULE, version, "--discard"]) == 0
    assert version not in outbox.versions(MODULE)
    assert not step.with_name(f"{version}.parquet").exists() and not plan.exists()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert registry.is_discarded(conn, MODULE, version)
        registry.approve(conn, MODULE, version, "ana")
        assert (MODULE, version) not in {(m, v) for m, v, _ in
                                         registry.pending_approvals(conn, [MODULE])}  # fmt: skip
        with pytest.raises(control.ControlRefused, match="discarded"):
            control.retry(instance, None, conn, MODULE, version)
        with conn.cursor() as cur:
            registry.record_version(
                cur, module=MODULE, version="9.9.9", metadata_hash="h", sink="postgres",
                location="dm_ctl", tables={}, rows={}, run_id=None,
            )  # fmt: skip
        published = "9.9.9"
        with pytest.raises(control.ControlRefused, match="never discarded"):
            control.stop(instance, conn, MODULE, published, "ana", discard=True, outbox=outbox)
    with pytest.raises(VersionRefused, match="discarded"):
        allocate(instance, postgres, loaded, trigger="test", version=version)
    assert events(pg_url, "version.stop")[0]["outcome"] == "ok"


def test_cancel_refuses_a_run_no_launcher_started_unless_forced(node):
    session, *_ = node
    instance = session.instance
    run = instance.add_run(  # what `dmetl run` in another terminal leaves in the instance
        dg.DagsterRun(
            job_name=f"{MODULE}_job",
            run_id=uuid.uuid4().hex,
            status=dg.DagsterRunStatus.STARTED,
            tags={"dm/module": MODULE, "dagster/partition": "1.0.9"},
        )
    )
    with pytest.raises(control.ControlRefused, match="not started by a run launcher"):
        control.cancel(instance, run.run_id)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    assert dmetl(["cancel", run.run_id, "--force"]) == 0
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
