"""Kafka source and sink against a real Kafka-protocol broker (tansu) on loopback."""

from __future__ import annotations

import json
import uuid

import dagster as dg
import pandas as pd
import pytest

from etl_assets.extract import entry as extract_pkg
from tests import servers
from tests.helpers import CONTEXT, run_version, write_module
from tests.servers import create_topic

pytestmark = pytest.mark.integration
kafka_bootstrap = servers.kafka_bootstrap  # the broker fixture


def _produce(bootstrap: str, topic: str, ids: range) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    pad = "x" * 400
    for i in ids:
        value = {"event_id": i, "kind": "click" if i % 2 else "view", "payload": pad}
        p.produce(topic, json.dumps(value).encode(), key=str(i).encode())
    assert p.flush(15) == 0


def _module(topic: str, name: str) -> dict:
    return {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": name,
        "version": "1.0.0",
        "autoUpload": True,
        "retry": {"maxRetries": 0},
        "connections": [{"name": "events", "type": "kafka", "urlEnv": "DM_TEST_KAFKA"}],
        "tables": [
            {
                "name": "events",
                "primaryKey": ["event_id"],
                "onKeyConflict": "dropAll",
                "columns": [
                    {"name": "event_id", "dataType": "integer", "nullable": False},
                    {"name": "kind", "dataType": "string"},
                ],
            }
        ],
        "collection": [
            {
                "table": "events",
                "source": "stream",
                "extract": {"type": "kafka", "connection": "events", "topic": topic},
            }
        ],
    }


def _committed(bootstrap: str, group: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset
    finally:
        c.close()


def test_crash_between_outbox_and_commit_loses_and_duplicates_nothing(
    kafka_bootstrap, tmp_path, resources, monkeypatch
):
    monkeypatch.setenv("DM_TEST_KAFKA", kafka_bootstrap)
    monkeypatch.setenv("DM_STORAGE_ROOT", str(tmp_path / "storage"))
    topic = f"events_{uuid.uuid4().hex[:6]}"
    create_topic(kafka_bootstrap, topic)
    _produce(kafka_bootstrap, topic, range(0, 500))
    folder = write_module(tmp_path / "stream_mod", _module(topic, "stream_mod"))
    group = "dm.stream_mod.events.stream"
    instance = dg.DagsterInstance.ephemeral()

    import etl_assets.extract.kafka as kafka_extract

    calls = {"n": 0}

    def crash_once(entry, folder, context):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("killed between outbox and commit")
        return kafka_extract.commit_kafka(entry, folder, context)

    monkeypatch.setitem(extract_pkg.DURABLE_HOOKS, "kafka", crash_once)
    first = run_version(folder, "1.0.0", resources, instance, job="stream_mod_prepare_job")
    assert not first.success
    assert _committed(kafka_bootstrap, group, topic) < 0  # nothing committed
    # messages arriving after the crash belong to the next version, not to the replay
    _produce(kafka_bootstrap, topic, range(500, 650))

    again = run_version(folder, "1.0.0", resources, instance, job="stream_mod_prepare_job")
    assert again.success
    assert _committed(kafka_bootstrap, group, topic) == 500
    v1 = resources["outbox"].read_table("stream_mod", "1.0.0", "events")
    assert sorted(v1["event_id"].tolist()) == list(range(500))

    nxt = run_version(folder, "1.0.1", resources, instance, job="stream_mod_prepare_job")
    assert nxt.success
    v2 = resources["outbox"].read_table("stream_mod", "1.0.1", "events")
    assert sorted(v2["event_id"].tolist()) == list(range(500, 650))
    assert _committed(kafka_bootstrap, group, topic) == 650


def test_kafka_sink_publishes_records_and_a_version_event(
    kafka_bootstrap, tmp_path, resources, monkeypatch
):
    monkeypatch.setenv("DM_TEST_KAFKA", kafka_bootstrap)
    monkeypatch.setenv("DM_STORAGE_ROOT", str(tmp_path / "storage"))
    src, out, events = (f"{n}_{uuid.uuid4().hex[:6]}" for n in ("src", "out", "versions"))
    for t in (src, out, events):
        create_topic(kafka_bootstrap, t)
    _produce(kafka_bootstrap, src, range(0, 40))
    doc = _module(src, "sink_mod")
    doc["upload"] = {
        "sink": {"type": "kafka", "connection": "events", "topic": out, "eventsTopic": events}
    }
    folder = write_module(tmp_path / "sink_mod", doc)
    result = run_version(folder, "2.0.0", resources, dg.DagsterInstance.ephemeral())
    assert result.success

    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": "t", "auto.offset.reset": "earliest"}
    )
    c.assign([TopicPartition(out, 0, 0), TopicPartition(events, 0, 0)])
    got: dict[str, list] = {out: [], events: []}
    for _ in range(30):
        for m in c.consume(100, timeout=1):
            if m.error() is None:
                got[m.topic()].append(json.loads(m.value()))
        if len(got[out]) >= 40 and got[events]:
            break
    c.close()
    assert sorted(r["event_id"] for r in got[out]) == list(range(40))
    (event,) = got[events]
    assert event["module"] == "sink_mod" and event["version"] == "2.0.0"
    assert event["row_counts"] == {"events": 40}
    assert event["location"] == f"kafka://{out}"


def test_decode_handles_nested_and_multiline_json():
    from etl_assets.extract.kafka import decode_json_values

    table = decode_json_values(
        [b'{"a": 1, "b": {"c": 2}}', b'{\n  "a": 2,\n  "b": null}'], "topic t"
    )
    df = table.to_pandas(types_mapper=pd.ArrowDtype)
    assert df["a"].tolist() == [1, 2]
    assert json.loads(df["b"].iloc[0]) == {"c": 2}
