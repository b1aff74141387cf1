"""The S3 sink: a version as Parquet under `<prefix>/<module>/<version>/`, manifest last.

Tables are uploaded first; `_manifest.json` (tables, row counts, keys) is written last, so a
consumer that waits for the manifest never reads half a version.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import pyarrow as pa

from etl_assets.publish.sink import PublishReport, PublishRequest
from resources.s3 import checked_client, s3_resource_for
from resources.stores import write_table

MANIFEST = "_manifest.json"


def version_prefix(prefix: str, module: str, version: str) -> str:
    base = prefix.strip("/")
    return f"{base}/{module}/{version}/" if base else f"{module}/{version}/"


class S3Sink:
    """Each table as Parquet, then the version's manifest."""

    def publish(self, request: PublishRequest) -> PublishReport:
        sink = request.loaded.model.upload.sink
        module, version = request.module, request.version
        conn = request.connection(sink.connection, "s3")
        client = checked_client(s3_resource_for(conn), conn.name, sink.bucket)
        base = version_prefix(sink.prefix, module, version)
        report = PublishReport(sink="s3", location=f"s3://{sink.bucket}/{base}")
        for name, df in request.tables.items():
            table = (
                df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
            )
            buf = io.BytesIO()
            write_table(buf, table)
            key = f"{base}{name}.parquet"
            client.put_object(Bucket=sink.bucket, Key=key, Body=buf.getvalue())
            report.rows[name] = report.inserted[name] = table.num_rows
            report.locations[name] = f"s3://{sink.bucket}/{key}"
        manifest = {
            "module": module,
            "version": version,
            "metadata_hash": request.loaded.hash,
            "run_id": request.run_id,
            "published_at": dt.datetime.now(dt.UTC).isoformat(),
            "tables": report.locations,
            "row_counts": report.rows,
        }
        client.put_object(
            Bucket=sink.bucket, Key=f"{base}{MANIFEST}", Body=json.dumps(manifest).encode()
        )
        request.info(f"published {module} {version} to s3://{sink.bucket}/{base}")
        return report
