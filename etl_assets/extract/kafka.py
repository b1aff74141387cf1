"""The Kafka connector: a bounded batch of a topic per version, committed once it is durable.

The first extraction of a version plans its batch — per partition, from the group's committed
offset to the high-watermark seen at the start of the step — and stores the plan. A re-run of the
same version (e.g. after a crash between the outbox and the commit) reads exactly the planned
range again, so nothing is lost and nothing is duplicated. The offsets are committed by the
durable hook, called once the version's outbox is written.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson
from confluent_kafka import KafkaError, TopicPartition

from etl_assets.errors import ExtractionError
from etl_assets.extract.records import records_to_frame
from etl_assets.metadata import CollectionEntry, KafkaConnector
from resources.kafka import KafkaResource

CONSUME_BATCH = 10_000
POLL_TIMEOUT = 1.0
IDLE_LIMIT = 15  # consecutive empty polls before giving up on a planned range
# librdkafka pauses fetching for fetch.queue.backoff.ms (1 s) whenever its read-ahead queue is
# full, and a fetch parked at the log end by the high-watermark probe waits fetch.wait.max.ms
# (0.5 s): both halve the throughput of a batch that is decoded more slowly than it arrives.
BATCH_CONSUMER = {"fetch.queue.backoff.ms": 10, "fetch.wait.max.ms": 50}


def group_id(entry: CollectionEntry, module: str) -> str:
    return entry.extract.groupId or f"dm.{module}.{entry.table}.{entry.source}"


def plan_path(storage_root: Path, module: str, version: str, entry: CollectionEntry) -> Path:
    name = f"{entry.table}__{entry.source}.json"
    return storage_root / "_kafka_plans" / module / version / name


def _write_plan(path: Path, plan: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(plan), "utf-8")
    os.replace(tmp, path)


def kafka_resource(entry: CollectionEntry, context: Any) -> KafkaResource:
    conn = context.connection(entry.extract.connection, "kafka")
    return KafkaResource.from_connection(conn)


def decode_json_values(values: list[bytes], where: str) -> pa.Table:
    """Decode JSON message values in one pass: JSON Lines through pyarrow's reader."""
    if not values:
        return pa.table({})
    # raw newlines in a JSON value can only be whitespace; JSON Lines needs one value per line
    blob = b"\n".join(v.replace(b"\n", b" ").replace(b"\r", b" ") for v in values)
    try:
        table = pajson.read_json(
            io.BytesIO(blob), read_options=pajson.ReadOptions(block_size=1 << 24)
        )
    except pa.ArrowInvalid:
        # mixed types in one field across messages: decode generically
        try:
            records = [json.loads(v) for v in values]
        except json.JSONDecodeError as exc:
            raise ExtractionError(f"{where}: a message value is not JSON: {exc.msg}") from None
        return pa.Table.from_pandas(records_to_frame(records), preserve_index=False)
    nested = [
        f.name
        for f in table.schema
        if pa.types.is_struct(f.type) or pa.types.is_list(f.type) or pa.types.is_null(f.type)
    ]
    for name in nested:  # nested values become JSON text, as from every other JSON source
        i = table.schema.get_field_index(name)
        col = table.column(name)
        text = pa.array(
            [None if v is None else json.dumps(v) for v in col.to_pylist()], pa.string()
        )
        table = table.set_column(i, name, text)
    return table


def extract_kafka(entry: CollectionEntry, folder: Path, context: Any) -> pd.DataFrame:
    """Read the version's planned range of the topic and decode the JSON values."""
    connector: KafkaConnector = entry.extract
    module, version = context.module.name, context.version
    where = f"Kafka topic {connector.topic!r}"
    resource = kafka_resource(entry, context)
    consumer = resource.consumer(group_id(entry, module), **BATCH_CONSUMER)
    try:
        path = plan_path(context.storage_root, module, version, entry)
        plan = json.loads(path.read_text("utf-8")) if path.is_file() else None
        if plan is None or plan.get("topic") != connector.topic:
            plan = _plan(consumer, connector, resource.timeout_seconds, where)
            _write_plan(path, plan)
        else:
            context.log.info(f"{where}: re-reading the planned range of version {version}")
        ranges = {int(p): (s, e) for p, (s, e) in plan["partitions"].items() if e > s}
        if not ranges:
            return pd.DataFrame()
        consumer.assign([TopicPartition(connector.topic, p, s) for p, (s, _) in ranges.items()])
        remaining = {p: e for p, (_, e) in ranges.items()}
        parts: list[pa.Table] = []
        idle = 0
        while remaining:
            msgs = consumer.consume(num_messages=CONSUME_BATCH, timeout=POLL_TIMEOUT)
            if not msgs:
                idle += 1
                if idle >= IDLE_LIMIT:
                    raise ExtractionError(
                        f"{where}: the broker delivered nothing for {IDLE_LIMIT}s while offsets"
                        f" up to {remaining} were expected"
                    )
                continue
            idle = 0
            values = []
            for m in msgs:  # unavoidable per-message step: pick values inside the planned range
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise ExtractionError(f"{where}: {err.str()}")
                p = m.partition()
                end = remaining.get(p)
                if end is None or m.offset() >= end:
                    continue
                values.append(m.value() or b"null")
                if m.offset() + 1 >= end:
                    del remaining[p]
                    consumer.pause([TopicPartition(connector.topic, p)])
            if values:
                parts.append(decode_json_values(values, where))
        tables = [t for t in parts if t.num_columns]
        if not tables:
            return pd.DataFrame()
        table = pa.concat_tables(tables, promote_options="permissive")
        context.log.info(
            f"{where}: {table.num_rows:,} messages for version {version}"
            f" (partitions {sorted(ranges)})"
        )
        return table.to_pandas(types_mapper=pd.ArrowDtype)
    finally:
        consumer.close()


def pending_messages(entry: CollectionEntry, context: Any) -> dict[str, int]:
    """Per partition with messages past the group's committed offset: its high watermark
    (what the source sensor watches; empty when every message has been committed)."""
    connector: KafkaConnector = entry.extract
    resource = kafka_resource(entry, context)
    consumer = resource.consumer(group_id(entry, context.module.name), **BATCH_CONSUMER)
    try:
        plan = _plan(
            consumer, connector, resource.timeout_seconds, f"Kafka topic {connector.topic!r}"
        )
    finally:
        consumer.close()
    return {p: end for p, (start, end) in plan["partitions"].items() if end > start}


def _plan(consumer: Any, connector: KafkaConnector, timeout: float, where: str) -> dict:
    """Per partition: [committed offset (or the earliest), high-watermark now]."""
    md = consumer.list_topics(connector.topic, timeout=timeout)
    topic = md.topics.get(connector.topic)
    if topic is None or topic.error is not None or not topic.partitions:
        raise ExtractionError(f"{where}: no such topic on the broker")
    tps = [TopicPartition(connector.topic, p) for p in sorted(topic.partitions)]
    committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=timeout)}
    budget = connector.maxMessages
    marks = _high_watermarks(consumer, tps, timeout)
    partitions = {}
    for tp in tps:
        low, high = marks[tp.partition]
        start = committed.get(tp.partition, -1)
        start = low if start is None or start < 0 else max(start, low)
        end = high
        if budget is not None:
            end = min(end, start + budget)
            budget -= max(end - start, 0)
        partitions[str(tp.partition)] = [start, end]
    return {"topic": connector.topic, "partitions": partitions}


def _high_watermarks(consumer: Any, tps: list, timeout: float) -> dict[int, tuple[int, int]]:
    """(low, high) per partition. The high mark is confirmed by fetching the last message: some
    brokers (tansu) answer ListOffsets with the last batch's base offset + 1, not the end."""
    marks = {
        tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
        for tp in tps
    }
    probe = [
        TopicPartition(tp.topic, tp.partition, max(high - 1, low))
        for tp in tps
        for low, high in [marks[tp.partition]]
        if high > low
    ]
    if not probe:
        return marks
    consumer.assign(probe)
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < len(probe) and time.monotonic() < deadline:
        seen.update(
            m.partition() for m in consumer.consume(len(probe), timeout=0.2) if m.error() is None
        )
    for tp in probe:
        low, high = marks[tp.partition]
        _, fetched = consumer.get_watermark_offsets(tp, cached=True)
        marks[tp.partition] = (low, max(high, fetched))
    consumer.unassign()
    return marks


def commit_kafka(entry: CollectionEntry, folder: Path, context: Any) -> None:
    """Commit the version's planned end offsets: its records are durable in the outbox."""
    connector: KafkaConnector = entry.extract
    module, version = context.module.name, context.version
    path = plan_path(context.storage_root, module, version, entry)
    if not path.is_file():
        raise ExtractionError(
            f"Kafka topic {connector.topic!r}: no extraction plan for {module} {version}"
            f" at {path}; run the extract step of this version first"
        )
    plan = json.loads(path.read_text("utf-8"))
    resource = kafka_resource(entry, context)
    consumer = resource.consumer(group_id(entry, module))
    try:
        tps = [
            TopicPartition(connector.topic, int(p), e) for p, (_, e) in plan["partitions"].items()
        ]
        current = {
            tp.partition: tp.offset
            for tp in consumer.committed(
                [TopicPartition(connector.topic, tp.partition) for tp in tps],
                timeout=resource.timeout_seconds,
            )
        }
        # never move a partition backwards (re-publishing an older version)
        tps = [tp for tp in tps if tp.offset > (current.get(tp.partition) or -1)]
        if tps:
            consumer.commit(offsets=tps, asynchronous=False)
        context.log.info(
            f"Kafka topic {connector.topic!r}: committed offsets of {module} {version}:"
            f" { ({tp.partition: tp.offset for tp in tps}) }"
        )
    finally:
        consumer.close()
