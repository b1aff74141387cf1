"""What the source sensor watches, per source: a fingerprint that changes when the source does.

- local files and scripts: path, size and modification time (`sensors/source_changes.py`);
- `s3`: key and ETag of every object the source reads (under its prefix, matching its pattern);
- `postgres` with `watermarkQuery`: the one value that query returns (per shard);
- `kafka`: the high watermark of every partition with messages past the group's committed offset
  (nothing pending — say, after the module's own run committed — keeps the last fingerprint);
- `sftp`: a SHA-256 of the content of every file the source reads.

Only a hash of each fingerprint is kept (in the sensor's cursor, visible in the UI): object keys,
watermark values and file contents never leave the source.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import psycopg

from etl_assets.connections import postgres_url
from etl_assets.extract.context import ExtractContext
from etl_assets.extract.kafka import pending_messages
from etl_assets.extract.sftp import remote_paths
from etl_assets.metadata import (
    CollectionEntry,
    KafkaConnector,
    PostgresConnector,
    S3Connector,
    SftpConnector,
)
from resources.postgres import PostgresResource
from resources.s3 import checked_client, list_etags, s3_resource_for
from resources.sftp import SftpResource

CHUNK = 1 << 20


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _s3(entry: CollectionEntry, ctx: ExtractContext) -> Any:
    c: S3Connector = entry.extract
    conn = ctx.connection(c.connection, "s3")
    client = checked_client(s3_resource_for(conn), conn.name, c.bucket)
    return list_etags(client, c.bucket, c.prefix, c.pattern)


def _postgres(entry: CollectionEntry, ctx: ExtractContext) -> Any:
    c: PostgresConnector = entry.extract
    values = {}
    for name in c.shards or [c.connection]:
        resource = PostgresResource(url=postgres_url(ctx.connection(name, "postgres")))
        with resource.connect(autocommit=False) as pg:
            pg.read_only = True
            try:
                row = pg.execute(c.watermarkQuery).fetchone()
            except psycopg.Error as exc:
                # the server's text may quote a value: only its class is named
                raise RuntimeError(
                    f"watermarkQuery failed on connection {name!r}: {type(exc).__name__}"
                ) from None
        values[str(name)] = None if row is None else row[0]
    return values


def _kafka(entry: CollectionEntry, ctx: ExtractContext) -> Any:
    # nothing pending (e.g. the last run committed its batch) is not a change: None keeps the
    # previous fingerprint, so only new messages past the committed offsets start a version
    return pending_messages(entry, ctx) or None


def _sftp(entry: CollectionEntry, ctx: ExtractContext) -> Any:
    c: SftpConnector = entry.extract
    hashes = {}
    with SftpResource.from_connection(ctx.connection(c.connection, "sftp")).open() as sftp:
        for path in remote_paths(sftp, c.path):
            h = hashlib.sha256()
            with sftp.open(path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
            hashes[path] = h.hexdigest()
    return hashes


def prober(entry: CollectionEntry) -> Callable[[CollectionEntry, ExtractContext], Any] | None:
    """How to fingerprint this source remotely, or None (local, or nothing to watch)."""
    ext = entry.extract
    if not entry.watch:
        return None
    if isinstance(ext, S3Connector):
        return _s3
    if isinstance(ext, PostgresConnector) and ext.watermarkQuery:
        return _postgres
    if isinstance(ext, KafkaConnector):
        return _kafka
    if isinstance(ext, SftpConnector):
        return _sftp
    return None


def source_key(entry: CollectionEntry) -> str:
    return f"{entry.table}/{entry.source}"
