"""Contract of the one private Dagster API we use (etl_assets/_dagster_private.py), and of the
public one that replaced the private cron validator."""

import os

import pytest
from pydantic import ValidationError

from etl_assets._dagster_private import validate_instance_config
from etl_assets.metadata import Schedule
from tests.conftest import ROOT


def test_cron_validation_uses_dagsters_public_schedule_definition():
    for ok in ("@daily", "@hourly", "0 */2 * * *", "0 0 * * MON", "0 0 1 * *"):
        assert Schedule.model_validate({"cron": ok}).cron == ok
    for bad in ("every day", "61 * * * *", "", "* * *", "0 0 31 2 *"):
        with pytest.raises(ValidationError, match="not a cron expression"):
            Schedule.model_validate({"cron": bad})
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        Schedule.model_validate({"cron": "@daily", "timezone": "Mars/Olympus"})


def test_instance_configs_validate(monkeypatch):
    assert validate_instance_config(str(ROOT))["run_monitoring"]["enabled"] is True
    for name in ("DAGSTER_PG_URL", "DAGSTER_K8S_NAMESPACE", "DM_IMAGE"):
        monkeypatch.setenv(name, "x")
    prod = validate_instance_config(str(ROOT / "deploy"), "dagster.prod.yaml")
    assert prod["run_launcher"]["class"] == "K8sRunLauncher"


def test_definitions_validate_without_a_stale_instance(tmp_path):
    """A disposed instance's defs state must not make module validation fail."""
    import gc

    import dagster as dg
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    from etl_assets.definitions import load_catalog
    from tests.conftest import EXAMPLES

    instance = dg.DagsterInstance.local_temp(str(tmp_path))
    stale = set_defs_state_storage(instance.defs_state_storage)
    stale.__enter__()  # what a test or tool that never left its instance leaves behind
    del instance
    gc.collect()
    try:
        catalog = load_catalog(EXAMPLES)
        assert not catalog.errors, [str(e) for e in catalog.errors]
    finally:
        stale.__exit__(None, None, None)


def test_run_control_contract():
    """What etl_assets/orchestration/control.py calls, as Dagster 1.13 spells it."""
    import inspect

    import dagster as dg

    from etl_assets import _dagster_private as private

    assert private.ReexecutionStrategy.FROM_FAILURE.value == "FROM_FAILURE"
    fields = set(inspect.signature(private.JobSubsetSelector).parameters)
    assert {"location_name", "repository_name", "job_name", "op_selection",
            "asset_selection", "asset_check_selection"} <= fields  # fmt: skip
    reexecute = set(inspect.signature(dg.DagsterInstance.create_reexecuted_run).parameters)
    assert {"request_context", "parent_run", "code_location", "remote_job", "strategy",
            "extra_tags", "use_parent_run_tags"} <= reexecute  # fmt: skip
    for name in ("get_remote_origin_id", "get_current_instigator_state"):
        assert callable(getattr(private.RemoteSchedule, name))
        assert callable(getattr(private.RemoteSensor, name))
    stop = list(inspect.signature(dg.DagsterInstance.stop_sensor).parameters)
    assert stop[1:3] == ["instigator_origin_id", "selector_id"]
    assert list(inspect.signature(dg.DagsterInstance.stop_schedule).parameters)[1:3] == [
        "schedule_origin_id",
        "schedule_selector_id",
    ]
    assert "workspace" in inspect.signature(dg.DagsterInstance.submit_run).parameters


def test_run_launcher_contract(tmp_path):
    """What `ProcessGroupRunLauncher` relies on: run monitoring asks the launcher about every
    STARTED run and fails it on FAILED; a dead recorded worker is FAILED, a live one RUNNING."""
    import inspect
    import subprocess

    from dagster._daemon.monitoring import run_monitoring

    from etl_assets._dagster_private import ExecuteRunArgs, WorkerStatus
    from etl_assets.run_worker import RunWorker, worker_health

    source = inspect.getsource(run_monitoring.monitor_started_run)
    assert "supports_check_run_worker_health" in source and "report_run_failed" in source
    assert "set_exit_code_on_failure" in ExecuteRunArgs.__annotations__ or hasattr(
        ExecuteRunArgs, "set_exit_code_on_failure"
    )
    assert worker_health("r1", RunWorker.current().tag()).status == WorkerStatus.RUNNING
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    worker = RunWorker.of(child.pid, own_group=True)
    child.kill()
    child.wait()
    result = worker_health("r2", worker.tag())
    assert result.status == WorkerStatus.FAILED and str(child.pid) in result.msg
    # a recycled pid is not the worker: another start time
    assert not RunWorker(worker.host, os.getpid(), worker.started).alive()
