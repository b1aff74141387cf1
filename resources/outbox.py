"""The outbox: prepared versions waiting for review and upload, as Parquet per table.

Layout under the root: `<module>/<version>/{<table>.parquet, datamodule.jsonld, croissant.json,
quarantine/<table>.parquet, key_maps/<table>.parquet}`. The root is a local folder or
`s3://bucket/prefix`, reached through dagster-aws's S3 resource (endpoint, region and credentials
as the deployment gives them). Every write is atomic:
a reader sees the old object or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource
from pydantic import Field


def write_parquet_atomic(df: pd.DataFrame | pa.Table, path: Path) -> None:
    """Write to a temporary file, fsync, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_parquet(path: Path | str | io.BytesIO) -> pd.DataFrame:
    return pq.read_table(path).to_pandas(types_mapper=pd.ArrowDtype)


def _table(df: pd.DataFrame | pa.Table) -> pa.Table:
    return df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)


class LocalStore:
    """Objects as files under a folder."""

    def __init__(self, base: Path):
        self.base = base

    def path(self, rel: str) -> Path:
        return self.base / rel

    def uri(self, rel: str) -> str:
        return self.path(rel).resolve().as_uri()

    def write_parquet(self, rel: str, df: pd.DataFrame | pa.Table) -> None:
        write_parquet_atomic(df, self.path(rel))

    def read_parquet(self, rel: str) -> pd.DataFrame:
        return read_parquet(self.path(rel))

    def write_bytes(self, rel: str, data: bytes) -> None:
        write_text_atomic(data.decode("utf-8"), self.path(rel))

    def read_bytes(self, rel: str) -> bytes:
        return self.path(rel).read_bytes()

    def exists(self, rel: str) -> bool:
        return self.path(rel).is_file()

    def list(self, rel_dir: str) -> list[str]:
        folder = self.path(rel_dir)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def modified(self, rel_dir: str) -> float | None:
        folder = self.path(rel_dir)
        if not folder.exists():
            return None
        return max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)

    def delete(self, rel_dir: str) -> None:
        shutil.rmtree(self.path(rel_dir), ignore_errors=True)


class S3Store:
    """Objects under `s3://bucket/prefix`, through a boto3 client from dagster-aws."""

    def __init__(self, client: Any, bucket: str, prefix: str):
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def uri(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self.key(rel)}"

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(rel), Body=data)

    def read_bytes(self, rel: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.key(rel))["Body"].read()

    def write_parquet(self, rel: str, df: pd.DataFrame | pa.Table) -> None:
        buf = io.BytesIO()
        pq.write_table(_table(df), buf, compression="zstd")
        buf.seek(0)
        # one PUT (or a multipart upload completed at the end) is atomic for readers
        self.client.upload_fileobj(buf, self.bucket, self.key(rel))

    def read_parquet(self, rel: str) -> pd.DataFrame:
        return read_parquet(io.BytesIO(self.read_bytes(rel)))

    def exists(self, rel: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(rel))
            return True
        except ClientError:
            return False

    def _objects(self, rel_dir: str) -> list[dict]:
        prefix = self.key(rel_dir).rstrip("/") + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return [obj for page in pages for obj in page.get("Contents", [])]

    def list(self, rel_dir: str) -> list[str]:
        prefix = self.key(rel_dir).rstrip("/") + "/"
        names = {obj["Key"][len(prefix) :].split("/", 1)[0] for obj in self._objects(rel_dir)}
        return sorted(n for n in names if n)

    def modified(self, rel_dir: str) -> float | None:
        objs = self._objects(rel_dir)
        return max(o["LastModified"].timestamp() for o in objs) if objs else None

    def delete(self, rel_dir: str) -> None:
        keys = [{"Key": o["Key"]} for o in self._objects(rel_dir)]
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys[start : start + 1000]}
            )


class OutboxResource(dg.ConfigurableResource):
    """Prepared versions: a local folder or an S3 prefix (`s3://bucket/prefix`, dagster-aws)."""

    root: str = Field(description="a folder or s3://bucket/prefix")
    s3_endpoint_url: str | None = Field(default=None, description="e.g. a MinIO or moto URL")
    s3_region_name: str | None = None
    s3_aws_access_key_id: str | None = None
    s3_aws_secret_access_key: str | None = Field(default=None, description="never logged")

    def _store(self) -> LocalStore | S3Store:
        if not self.root.startswith("s3://"):
            return LocalStore(Path(self.root))
        s3 = S3Resource(
            endpoint_url=self.s3_endpoint_url,
            region_name=self.s3_region_name,
            aws_access_key_id=self.s3_aws_access_key_id,
            aws_secret_access_key=self.s3_aws_secret_access_key,
            max_attempts=5,
        )
        bucket, _, prefix = self.root[len("s3://") :].partition("/")
        return S3Store(s3.get_client(), bucket, prefix)

    @staticmethod
    def _rel(module: str, version: str, *parts: str) -> str:
        return "/".join([module, version, *parts])

    # --- locations -------------------------------------------------------------------------

    def version_uri(self, module: str, version: str) -> str:
        return self._store().uri(self._rel(module, version))

    def table_uri(self, module: str, version: str, table: str) -> str:
        return self._store().uri(self._rel(module, version, f"{table}.parquet"))

    def local_dir(self, module: str, version: str) -> Path | None:
        """The version's folder when the outbox is local (for scripts), else None."""
        store = self._store()
        return store.path(self._rel(module, version)) if isinstance(store, LocalStore) else None

    # --- tables, quarantine, documents ------------------------------------------------------

    def write_table(self, module: str, version: str, table: str, df: pd.DataFrame) -> str:
        rel = self._rel(module, version, f"{table}.parquet")
        store = self._store()
        store.write_parquet(rel, df)
        return store.uri(rel)

    def read_table(self, module: str, version: str, table: str) -> pd.DataFrame:
        return self._store().read_parquet(self._rel(module, version, f"{table}.parquet"))

    def has_table(self, module: str, version: str, table: str) -> bool:
        return self._store().exists(self._rel(module, version, f"{table}.parquet"))

    def table_schema(self, module: str, version: str, table: str) -> pa.Schema:
        data = self._store().read_bytes(self._rel(module, version, f"{table}.parquet"))
        return pq.read_schema(io.BytesIO(data))

    def table_sha256(self, module: str, version: str, table: str) -> str:
        data = self._store().read_bytes(self._rel(module, version, f"{table}.parquet"))
        return hashlib.sha256(data).hexdigest()

    def write_quarantine(self, module: str, version: str, table: str, df: pd.DataFrame) -> str:
        rel = self._rel(module, version, "quarantine", f"{table}.parquet")
        store = self._store()
        store.write_parquet(rel, df)
        return store.uri(rel)

    def read_quarantine_table(self, module: str, version: str, name: str) -> pd.DataFrame:
        """One quarantine file of the version (a table's, or `<table>__anonymize`)."""
        rel = self._rel(module, version, "quarantine", f"{name}.parquet")
        store = self._store()
        return store.read_parquet(rel) if store.exists(rel) else pd.DataFrame()

    def read_quarantine(self, module: str, version: str) -> pd.DataFrame:
        store = self._store()
        rel = self._rel(module, version, "quarantine")
        parts = [
            store.read_parquet(f"{rel}/{name}")
            for name in store.list(rel)
            if name.endswith(".parquet")
        ]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def write_key_map(self, module: str, version: str, table: str, df: pd.DataFrame) -> str:
        """Old -> new keys of records re-keyed by `onKeyConflict: regenerate`."""
        rel = self._rel(module, version, "key_maps", f"{table}.parquet")
        store = self._store()
        store.write_parquet(rel, df)
        return store.uri(rel)

    def write_json(self, module: str, version: str, name: str, data: Any) -> str:
        rel = self._rel(module, version, name)
        store = self._store()
        text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
        store.write_bytes(rel, text.encode("utf-8"))
        return store.uri(rel)

    def read_json(self, module: str, version: str, name: str) -> Any:
        return json.loads(self._store().read_bytes(self._rel(module, version, name)))

    # --- versions and retention ---------------------------------------------------------------

    def versions(self, module: str) -> list[str]:
        return self._store().list(module)

    def age_seconds(self, module: str, version: str) -> float | None:
        """Seconds since anything of the version was last written (None if it is gone)."""
        modified = self._store().modified(self._rel(module, version))
        return None if modified is None else max(0.0, time.time() - modified)

    def delete_version(self, module: str, version: str) -> None:
        self._store().delete(self._rel(module, version))
