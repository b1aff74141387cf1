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

from etl_assets.connections import connection_or_default
from etl_assets.errors import UploadError
from etl_assets.publishing import PublishReport
from etl_assets.sinks import register
from etl_assets.sinks.postgres import row_hash
from resources.kafka import KafkaResource

FLUSH_TIMEOUT = 60.0


def json_lines(df: pd.DataFrame) -> list[bytes]:
    """Records as JSON values, serialized column-wise by pandas (ISO dates, nulls as null)."""
    if df.empty:
        return []
    text = df.to_json(orient="records", lines=True, date_format="iso", force_ascii=False)
    return [line.encode() for line in text.splitlines()]


@register("kafka")
def publish_kafka(
    loaded: Any,
    version: str,
    tables: dict[str, pd.DataFrame],
    *,
    outbox: Any = None,
    postgres: Any = None,
    run_id: str | None = None,
    log: Any = None,
) -> PublishReport:
    """Produce every table's records, wait for all acknowledgements, then the version event."""
    sink = loaded.model.upload.sink
    module = loaded.model.name
    conn = connection_or_default(loaded.model, sink.connection, "kafka")
    producer = KafkaResource.from_connection(conn).producer()
    errors: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None and len(errors) < 5:
            errors.append(str(err))

    report = PublishReport(sink="kafka")
    for name, df in tables.items():
        keys = row_hash(df).astype("string").tolist() if len(df) else []
        headers = [("dm_module", module), ("dm_version", version), ("dm_table", name)]
        for key, value in zip(keys, json_lines(df), strict=True):  # one produce per record
            while True:
                try:
                    producer.produce(
                        sink.topic, value, key=key, headers=headers, on_delivery=on_delivery
                    )
                    break
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.5)
            producer.poll(0)
        report.rows[name] = report.inserted[name] = len(df)
        report.locations[name] = f"kafka://{sink.topic}"
    left = producer.flush(FLUSH_TIMEOUT)
    if left or errors:
        raise UploadError(
            f"Kafka sink of {module} {version} (connection {conn.name!r}, topic {sink.topic!r}):"
            f" {left} records unacknowledged; errors: {'; '.join(errors) or 'none'}"
        )
    if sink.eventsTopic:
        event = {
            "module": module,
            "version": version,
            "tables": list(tables),
            "row_counts": report.rows,
            "location": f"kafka://{sink.topic}",
            "metadata_hash": loaded.hash,
            "run_id": run_id,
            "published_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        producer.produce(
            sink.eventsTopic, json.dumps(event).encode(), key=f"{module}:{version}".encode()
        )
        if producer.flush(FLUSH_TIMEOUT):
            raise UploadError(
                f"Kafka sink of {module} {version}: the version event to"
                f" {sink.eventsTopic!r} was not acknowledged"
            )
    if log:
        log.info(f"published {sum(report.rows.values()):,} records to Kafka topic {sink.topic}")
    return report
