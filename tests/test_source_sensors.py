"""The source sensor against real servers on loopback: S3 (moto), PostgreSQL, Kafka (tansu) and
SFTP (paramiko). A burst of changes across all of them is one version; a restarted sensor with
the saved cursor sees no change; the cursor holds hashes, never keys or values."""

from __future__ import annotations

import json
import uuid

import dagster as dg
import psycopg
import pytest

from etl_assets.definitions import load_catalog
from resources.deployment import SecretsResource
from sensors import build_source_sensor
from tests import conftest, servers
from tests.helpers import CONTEXT, write_module
from tests.servers import create_topic

kafka_bootstrap = servers.kafka_bootstrap
s3_endpoint = servers.s3_endpoint
sftp_server = servers.sftp_server
pytestmark = pytest.mark.integration
WATERMARK = "2026-11-30 08:15:00+00"


def module_doc(topic: str, host_key: str) -> dict:
    entry = lambda source, extract: {"table": "items", "source": source, "extract": extract}  # noqa: E731
    return {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": "watched",
        "version": "1.0.0",
        "connections": [
            {
                "name": "lake",
                "type": "s3",
                "urlEnv": "DM_TEST_S3",
                "options": {"region_name": "us-east-1", "aws_access_key_id": "testing"},
                "secretEnv": {"aws_secret_access_key": "DM_TEST_S3_SECRET"},
            },
            {"name": "db", "type": "postgres", "urlEnv": "DM_TEST_PG"},
            {"name": "events", "type": "kafka", "urlEnv": "DM_TEST_KAFKA"},
            {
                "name": "partner",
                "type": "sftp",
                "urlEnv": "DM_TEST_SFTP_URL",
                "options": {"host_key": host_key},
                "secretEnv": {"password": "DM_TEST_SFTP_PASSWORD"},
            },
        ],  # fmt: skip
        "tables": [{"name": "items", "columns": [{"name": "item_id", "dataType": "integer"}]}],
        "collection": [
            entry(
                "lake",
                {
                    "type": "s3",
                    "connection": "lake",
                    "bucket": "drop",
                    "prefix": "in/",
                    "pattern": "*.csv",
                },
            ),
            entry(
                "db",
                {
                    "type": "postgres",
                    "connection": "db",
                    "query": "SELECT item_id FROM src",
                    "watermarkQuery": "SELECT max(updated_at) FROM src",
                },
            ),
            entry("stream", {"type": "kafka", "connection": "events", "topic": topic}),
            entry("partner", {"type": "sftp", "connection": "partner", "path": "/drop/*.csv"}),
            {
                **entry(
                    "archive",
                    {"type": "s3", "connection": "lake", "bucket": "drop", "prefix": "elsewhere/"},
                ),
                "watch": False,
            },
        ],  # fmt: skip
    }


def produce(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        p.produce(topic, json.dumps({"item_id": i}).encode())
    assert p.flush(15) == 0


def commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def test_a_burst_across_s3_postgres_kafka_and_sftp_is_one_version(
    tmp_path, pg_url, s3_endpoint, kafka_bootstrap, sftp_server, monkeypatch
):
    for k, v in {**servers.S3_ENV, "DM_TEST_S3": s3_endpoint, "DM_TEST_S3_SECRET": "testing",
                 "DM_TEST_PG": pg_url, "DM_TEST_KAFKA": kafka_bootstrap,
                 "DM_TEST_SFTP_URL": f"sftp://etl@127.0.0.1:{sftp_server.port}",
                 "DM_TEST_SFTP_PASSWORD": sftp_server.password}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="drop")
    s3.put_object(Bucket="drop", Key="in/a.csv", Body=b"item_id\n1\n")
    s3.put_object(Bucket="drop", Key="elsewhere/x.csv", Body=b"item_id\n9\n")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE src (item_id int, updated_at timestamptz)")
        conn.execute("INSERT INTO src VALUES (1, %s)", (WATERMARK,))
    topic = f"items_{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic)
    produce(kafka_bootstrap, topic, 1)
    (sftp_server.root / "drop").mkdir()
    (sftp_server.root / "drop" / "a.csv").write_text("item_id\n1\n")

    key = sftp_server.host_key
    folder = write_module(
        tmp_path / "mods" / "watched", module_doc(topic, f"{key.get_name()} {key.get_base64()}")
    )

    def sensor_now():  # what a restarted daemon loads
        return build_source_sensor(load_catalog(folder.parent).module("watched").loaded)

    md = load_catalog(folder.parent).module("watched").definitions
    res = {**conftest.local_resources(tmp_path, pg_url), "secrets": SecretsResource()}

    def tick(instance, sensor, cursor) -> dg.SensorResult:
        """One evaluation, as the daemon does it (the sensor's own function, its cursor)."""
        defs = dg.Definitions(
            assets=md.assets, asset_checks=md.checks, jobs=md.jobs, sensors=[sensor], resources=res
        )
        ctx = dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=defs, resources=res
        )
        out = sensor(ctx)
        if isinstance(out, dg.SkipReason):
            return dg.SensorResult(skip_reason=out, cursor=cursor)
        return out

    with dg.instance_for_test() as instance:
        sensor = sensor_now()
        first = tick(instance, sensor, None)
        assert not first.run_requests  # the first tick only records the sources
        cursor = first.cursor
        for text in ("in/a.csv", WATERMARK, "2026-11-30", "a.csv"):
            assert text not in cursor  # hashes only
        quiet = tick(instance, sensor, cursor)
        assert not quiet.run_requests and "no source changed" in quiet.skip_reason.skip_message

        # a burst: every source changes before the next tick
        s3.put_object(Bucket="drop", Key="in/b.csv", Body=b"item_id\n2\n")
        s3.put_object(Bucket="drop", Key="elsewhere/y.csv", Body=b"item_id\n8\n")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE src SET updated_at = now()")
        produce(kafka_bootstrap, topic, 3)
        (sftp_server.root / "drop" / "a.csv").write_text("item_id\n1\n2\n")
        burst = tick(instance, sensor, cursor)
        [request] = burst.run_requests
        assert request.partition_key == "1.0.1"
        assert (
            request.tags["dm/changed_sources"] == "items/db,items/lake,items/partner,items/stream"
        )
        assert burst.dynamic_partitions_requests[0].partition_keys == ["1.0.1"]

        # a restart: a new sensor with the saved cursor sees nothing new
        sensor = sensor_now()
        assert not tick(instance, sensor, burst.cursor).run_requests
        # the module's run committed its Kafka batch: not a change
        commit(kafka_bootstrap, "dm.watched.items.stream", topic, 4)
        assert not tick(instance, sensor, burst.cursor).run_requests
        # only objects under a watched source's prefix count (the archive source has watch:
        # false); a rewritten object (new ETag) does
        s3.put_object(Bucket="drop", Key="elsewhere/z.csv", Body=b"item_id\n7\n")
        assert not tick(instance, sensor, burst.cursor).run_requests
        s3.put_object(Bucket="drop", Key="in/a.csv", Body=b"item_id\n1\n3\n")
        again = tick(instance, sensor, burst.cursor)
        assert [r.partition_key for r in again.run_requests] == ["1.0.2"]
        assert again.run_requests[0].tags["dm/changed_sources"] == "items/lake"

        # while that run is in progress, more changes wait for it, then make one version
        running = instance.add_run(
            dg.DagsterRun(
                job_name="watched_prepare_job",
                run_id=uuid.uuid4().hex,
                status=dg.DagsterRunStatus.STARTED,
                tags=again.run_requests[0].tags,
            )
        )
        s3.put_object(Bucket="drop", Key="in/c.csv", Body=b"item_id\n4\n")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE src SET updated_at = now() + interval '1 day'")
        waiting = tick(instance, sensor, again.cursor)
        assert not waiting.run_requests
        assert f"waiting for run {running.run_id}" in waiting.skip_reason.skip_message
        instance.report_run_canceled(running)
        later = tick(instance, sensor, waiting.cursor)
        assert [r.partition_key for r in later.run_requests] == ["1.0.3"]
        assert later.run_requests[0].tags["dm/changed_sources"] == "items/db,items/lake"
