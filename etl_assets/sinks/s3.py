"""The S3 sink: a version as Parquet under `<prefix>/<module>/<version>/`, manifest last.

Tables are uploaded first; `_manifest.json` (tables, row counts, keys) is written last, so a
consumer that waits for the manifest never reads half a version.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from etl_assets.connections import connection_or_default
from etl_assets.publishing import PublishReport
from etl_assets.sinks import register
from resources.s3 import checked_client, s3_resource_for

MANIFEST = "_manifest.json"


def version_prefix(prefix: str, module: str, version: str) -> str:
    base = prefix.strip("/")
    return f"{base}/{module}/{version}/" if base else f"{module}/{version}/"


@register("s3")
def publish_s3(
    loaded: Any,
    version: str,
    tables: dict[str, pd.DataFrame],
    *,
    outbox: Any = None,
    postgres: Any = None,
    run_id: str | None = None,
    log: Any = None,
) -> PublishReport:
    """Upload each table as Parquet, then the version's manifest."""
    sink = loaded.model.upload.sink
    module = loaded.model.name
    conn = connection_or_default(loaded.model, sink.connection, "s3")
    client = checked_client(s3_resource_for(conn), conn.name, sink.bucket)
    base = version_prefix(sink.prefix, module, version)
    report = PublishReport(sink="s3")
    for name, df in tables.items():
        table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        key = f"{base}{name}.parquet"
        client.put_object(Bucket=sink.bucket, Key=key, Body=buf.getvalue())
        report.rows[name] = report.inserted[name] = table.num_rows
        report.locations[name] = f"s3://{sink.bucket}/{key}"
    manifest = {
        "module": module,
        "version": version,
        "metadata_hash": loaded.hash,
        "run_id": run_id,
        "published_at": dt.datetime.now(dt.UTC).isoformat(),
        "tables": report.locations,
        "row_counts": report.rows,
    }
    client.put_object(
        Bucket=sink.bucket, Key=f"{base}{MANIFEST}", Body=json.dumps(manifest).encode()
    )
    if log:
        log.info(f"published {module} {version} to s3://{sink.bucket}/{base}")
    return report
