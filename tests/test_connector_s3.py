"""S3 source and sink through the dagster-aws resource against moto's server on loopback."""

from __future__ import annotations

import io
import json

import dagster as dg
import pyarrow.parquet as pq
import pytest

from resources.s3 import s3_resource_for
from tests import servers
from tests.helpers import CONTEXT, run_version, write_module

pytestmark = pytest.mark.integration
s3_endpoint = servers.s3_endpoint  # moto's ThreadedMotoServer


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    for k, v in servers.S3_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DM_TEST_S3", s3_endpoint)
    monkeypatch.setenv("DM_TEST_S3_SECRET", "testing")
    from etl_assets.connections import ResolvedConnection

    client = s3_resource_for(
        ResolvedConnection(name="t", type="s3", url=s3_endpoint, settings={"region": "us-east-1"})
    ).get_client()
    return client


def _module(name: str) -> dict:
    return {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": name,
        "version": "1.0.0",
        "autoUpload": True,
        "retry": {"maxRetries": 0},
        "connections": [
            {
                "name": "lake",
                "type": "s3",
                "urlEnv": "DM_TEST_S3",
                "options": {"region_name": "us-east-1", "aws_access_key_id": "testing"},
                "secretEnv": {"aws_secret_access_key": "DM_TEST_S3_SECRET"},
            }
        ],
        "tables": [
            {
                "name": "readings",
                "columns": [
                    {"name": "sensor", "dataType": "string"},
                    {"name": "value", "dataType": "number"},
                ],
            }
        ],
        "collection": [
            {
                "table": "readings",
                "source": "lake",
                "extract": {
                    "type": "s3",
                    "connection": "lake",
                    "bucket": "raw",
                    "prefix": "readings/",
                    "pattern": "2024-*",
                },
            }
        ],
        "upload": {"sink": {"type": "s3", "connection": "lake", "bucket": "pub", "prefix": "dm"}},
    }


def test_s3_prefix_pattern_to_parquet_version(s3, tmp_path, resources):
    s3.create_bucket(Bucket="raw")
    s3.create_bucket(Bucket="pub")
    s3.put_object(Bucket="raw", Key="readings/2024-01.csv", Body=b"sensor,value\na,1.5\nb,\n")
    lines = b'{"sensor": "c", "value": 3}\n{"sensor": "d", "value": 4.25}\n'
    s3.put_object(Bucket="raw", Key="readings/2024-02.jsonl", Body=lines)
    s3.put_object(Bucket="raw", Key="readings/2023-12.csv", Body=b"sensor,value\nold,0\n")

    folder = write_module(tmp_path / "lake_mod", _module("lake_mod"))
    result = run_version(folder, "1.2.0", resources, dg.DagsterInstance.ephemeral())
    assert result.success

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="pub", Prefix="dm/")["Contents"]}
    assert keys == {"dm/lake_mod/1.2.0/readings.parquet", "dm/lake_mod/1.2.0/_manifest.json"}
    body = s3.get_object(Bucket="pub", Key="dm/lake_mod/1.2.0/readings.parquet")["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    assert sorted(table.column("sensor").to_pylist()) == ["a", "b", "c", "d"]  # not 2023
    manifest = json.loads(
        s3.get_object(Bucket="pub", Key="dm/lake_mod/1.2.0/_manifest.json")["Body"].read()
    )
    assert manifest["row_counts"] == {"readings": 4} and manifest["version"] == "1.2.0"
    # recorded in the registry like every sink's versions (retention and `dmetl versions` use it)
    import psycopg

    from etl_assets.registry import list_versions

    with psycopg.connect(resources["postgres"].url) as conn:
        [row] = list_versions(conn, "lake_mod")
    assert row["version"] == "1.2.0" and row["sink"].startswith("s3")


def test_missing_bucket_names_the_connection(s3, tmp_path, resources):
    doc = _module("nobucket")
    doc["collection"][0]["extract"]["bucket"] = "does-not-exist"
    folder = write_module(tmp_path / "nobucket", doc)
    result = run_version(folder, "1.0.0", resources, dg.DagsterInstance.ephemeral())
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error.cause or failure.event_specific_data.error)
    assert "'lake'" in message and "does-not-exist" in message
    assert "testing" not in message.replace("AWS", "")
