"""The Kafka sink: a version's records to a topic, then one event per published version.

Each record is a JSON value keyed by its row hash (consumers can dedupe a re-published version)
with headers naming the module, version and table. After every record is acknowledged, an event
(module, version, tables, row counts, where the data is) goes to `eventsTopic`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd

from etl_assets.errors import UploadError
from etl_assets.publish.pg_copy import row_hash
from etl_assets.publish.sink import PublishReport, PublishRequest
from resources.kafka import KafkaResource

FLUSH_TIMEOUT = 60.0


def json_lines(df: pd.DataFrame) -> list[bytes]:
    """Records as JSON values, serialized column-wise by pandas (ISO dates, nulls as null)."""
    if df.empty:
        return []
    text = df.to_json(orient="records", lines=True, date_format="iso", force_ascii=False)
    return [line.encode() for line in text.splitlines()]


class KafkaSink:
    """Every table's records, acknowledged, then the version event."""

    def publish(self, request: PublishRequest) -> PublishReport:
        sink = request.loaded.model.upload.sink
        conn = request.connection(sink.connection, "kafka")
        producer = KafkaResource.from_connection(conn).producer()
        report = PublishReport(sink="kafka", location=f"kafka://{sink.topic}")
        errors = _produce_tables(producer, sink.topic, request, report)
        left = producer.flush(FLUSH_TIMEOUT)
        if left or errors:
            raise UploadError(
                f"Kafka sink of {request.module} {request.version} (connection {conn.name!r},"
                f" topic {sink.topic!r}): {left} records unacknowledged;"
                f" errors: {'; '.join(errors) or 'none'}"
            )
        if sink.eventsTopic:
            _produce_event(producer, sink.eventsTopic, request, report)
        request.info(f"published {sum(report.rows.values()):,} records to Kafka topic {sink.topic}")
        return report


def _produce_tables(
    producer: Any, topic: str, request: PublishRequest, report: PublishReport
) -> list[str]:
    errors: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None and len(errors) < 5:
            errors.append(str(err))

    for name, df in request.tables.items():
        keys = row_hash(df).astype("string").tolist() if len(df) else []
        headers = [
            ("dm_module", request.module),
            ("dm_version", request.version),
            ("dm_table", name),
        ]
        for key, value in zip(keys, json_lines(df), strict=True):  # one produce per record
            while True:
                try:
                    producer.produce(
                        topic, value, key=key, headers=headers, on_delivery=on_delivery
                    )
                    break
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.5)
            producer.poll(0)
        report.rows[name] = report.inserted[name] = len(df)
        report.locations[name] = f"kafka://{topic}"
    return errors


def _produce_event(
    producer: Any, topic: str, request: PublishRequest, report: PublishReport
) -> None:
    event = {
        "module": request.module,
        "version": request.version,
        "tables": list(request.tables),
        "row_counts": report.rows,
        "location": report.location,
        "metadata_hash": request.loaded.hash,
        "run_id": request.run_id,
        "published_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    producer.produce(
        topic, json.dumps(event).encode(), key=f"{request.module}:{request.version}".encode()
    )
    if producer.flush(FLUSH_TIMEOUT):
        raise UploadError(
            f"Kafka sink of {request.module} {request.version}: the version event to"
            f" {topic!r} was not acknowledged"
        )
