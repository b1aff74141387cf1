"""Retry only what can heal (issue 10.6): network and server errors are retried, bad metadata,
a bad version and bad data fail at once, an invalid version partition fails at the first step,
and the instance's run retries leave step failures alone."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest
from botocore.exceptions import ClientError

from etl_assets.errors import ExtractionError, MetadataError, Problem, UploadError, may_heal
from etl_assets.failures import root_cause
from resources.http import HttpError
from resources.retry import ConnectionFailed, is_transient
from tests.conftest import ROOT
from tests.helpers import CONTEXT, run_version, write_module
from tests.servers import free_port


def s3_error(code: str, status: int) -> ClientError:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutObject")


def refused_connection() -> psycopg.OperationalError:
    try:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/x", connect_timeout=2)
    except psycopg.OperationalError as exc:
        return exc
    pytest.fail("a closed port accepted a connection")


def test_what_counts_as_transient(pg_url):
    assert is_transient(refused_connection())
    assert is_transient(ConnectionRefusedError()) and is_transient(TimeoutError())
    assert is_transient(s3_error("SlowDown", 503)) and is_transient(s3_error("InternalError", 500))
    assert not is_transient(s3_error("NoSuchBucket", 404))
    assert not is_transient(s3_error("AccessDenied", 403))
    assert is_transient(HttpError("503", retryable=True))
    assert not is_transient(HttpError("404"))
    assert is_transient(ConnectionFailed("cannot connect to sftp"))
    # a server that answers and refuses is not an outage
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute("SELECT * FROM no_such_table")
    assert not is_transient(info.value)
    assert not is_transient(ValueError("not a number")) and not is_transient(KeyError("x"))


def test_user_errors_never_heal():
    assert not may_heal(MetadataError("m.jsonld", [Problem("version", "bad")]))
    assert not may_heal(UploadError("waiting for approval"))
    assert not may_heal(ExtractionError("malformed output"))
    assert may_heal(ExtractionError("server down", retryable=True))
    assert may_heal(refused_connection())


def module(name: str, **extra) -> dict:
    return {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": name,
        "version": "1.0.0",
        "retry": {"maxRetries": 2, "delaySeconds": 0},
        "tables": [{"name": "items", "columns": [{"name": "id", "dataType": "integer"}]}],
        "collection": [
            {"table": "items", "source": "csv", "extract": {"type": "file", "path": "i.csv"}}
        ],
        **extra,
    }


@pytest.fixture
def instance(dagster_home):
    with dg.instance_for_test(temp_dir=str(dagster_home)) as inst:
        yield inst


def step_events(result: dg.ExecuteInProcessResult, kind: str) -> list[str]:
    return [e.step_key for e in result.all_events if e.event_type_value == kind]


def test_an_invalid_version_fails_at_the_first_step_without_retries(tmp_path, resources, instance):
    folder = write_module(tmp_path / "shop", module("shop"), {"i.csv": "id\n1\n"})
    result = run_version(folder, "9.9.9-get", resources, instance)
    assert not result.success
    [failed] = step_events(result, "STEP_FAILURE")
    assert "extract" in failed
    assert step_events(result, "STEP_RESTARTED") == []
    assert step_events(result, "STEP_SUCCESS") == []  # no stage ran before it
    [event] = [e for e in result.all_events if e.is_step_failure]
    assert "is not a MAJOR.MINOR.PATCH version" in event.step_failure_data.error.message


def test_an_unreachable_sink_is_retried_and_waiting_for_approval_is_not(
    tmp_path, resources, instance, monkeypatch
):
    monkeypatch.setenv("DM_TEST_DOWN_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    doc = module(
        "down",
        autoUpload=True,
        connections=[{"name": "wh", "type": "postgres", "urlEnv": "DM_TEST_DOWN_URL"}],
        upload={"sink": {"type": "postgres", "connection": "wh", "schema": "sales"}},
    )
    folder = write_module(tmp_path / "down", doc, {"i.csv": "id\n1\n"})
    result = run_version(folder, "1.0.1", resources, instance)
    assert not result.success
    assert step_events(result, "STEP_RESTARTED") == ["down__upload"] * 2
    [event] = [e for e in result.all_events if e.is_step_failure]
    assert "a network or server error" in root_cause(event)

    folder = write_module(tmp_path / "waits", module("waits"), {"i.csv": "id\n1\n"})
    result = run_version(folder, "1.0.1", resources, instance)
    assert not result.success
    assert step_events(result, "STEP_RESTARTED") == []
    [event] = [e for e in result.all_events if e.is_step_failure]
    assert "waiting for approval" in event.step_failure_data.error.message


def test_run_retries_leave_step_failures_alone(tmp_path):
    import yaml

    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        assert inst.run_retries_enabled and inst.run_retries_max_retries == 1
        # a step failure was already retried if it could heal: the run is not run again
        assert inst.run_retries_retry_on_asset_or_op_failure is False
