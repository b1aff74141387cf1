"""The outbox: prepared versions waiting for review and upload, in two zones.

Under the root (a local folder or `s3://bucket/prefix`, through dagster-aws's S3 resource):

- `published/<module>/<version>/`: what consumers may read — the anonymized tables
  (`<table>.parquet`), the version's metadata (`datamodule.jsonld`) and `croissant.json`;
- `published/<module>/current.json`: which version folder consumers are served (rewritten,
  atomically, by every upload);
- `restricted/<module>/<version>/`: what only data managers and admins may read — the
  quarantine (`quarantine/<table>.parquet`, original records), key maps of re-keyed records
  (`key_maps/`), and the full text of failing scripts' output (`logs/`).

Locally, published files honour the umask and restricted files and folders are 0600/0700; on S3
the two zones are separate prefixes, so a bucket policy can tell them apart. Every write is
atomic: a reader sees the old object or the new one, never half of one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from resources.staged import StagedTable
from resources.stores import LocalStore, S3Store

PUBLISHED, RESTRICTED = "published", "restricted"
CURRENT_FILE = "current.json"


class OutboxResource(dg.ConfigurableResource):
    """Prepared versions: a local folder or an S3 prefix (`s3://bucket/prefix`, dagster-aws)."""

    root: str = Field(description="a folder or s3://bucket/prefix")
    s3_endpoint_url: str | None = Field(default=None, description="e.g. a MinIO or moto URL")
    s3_region_name: str | None = None
    s3_aws_access_key_id: str | None = None
    s3_aws_secret_access_key: str | None = Field(default=None, description="never logged")

    def _store(self, zone: str = PUBLISHED) -> LocalStore | S3Store:
        if not self.root.startswith("s3://"):
            return LocalStore(Path(self.root) / zone, restricted=zone == RESTRICTED)
        from dagster_aws.s3 import S3Resource  # boto3 and dagster-aws, for S3 roots only

        s3 = S3Resource(
            endpoint_url=self.s3_endpoint_url,
            region_name=self.s3_region_name,
            aws_access_key_id=self.s3_aws_access_key_id,
            aws_secret_access_key=self.s3_aws_secret_access_key,
            max_attempts=5,
        )
        bucket, _, prefix = self.root[len("s3://") :].partition("/")
        return S3Store(s3.get_client(), bucket, f"{prefix.strip('/')}/{zone}".strip("/"))

    @staticmethod
    def _rel(module: str, version: str, *parts: str) -> str:
        return "/".join([module, version, *parts])

    # --- locations -------------------------------------------------------------------------

    def version_uri(self, module: str, version: str) -> str:
        return self._store().uri(self._rel(module, version))

    def table_uri(self, module: str, version: str, table: str) -> str:
        return self._store().uri(self._rel(module, version, f"{table}.parquet"))

    def restricted_uri(self, module: str, version: str) -> str:
        return self._store(RESTRICTED).uri(self._rel(module, version))

    def local_dir(self, module: str, version: str) -> Path | None:
        """The version's published folder when the outbox is local (for scripts), else None."""
        store = self._store()
        return store.path(self._rel(module, version)) if isinstance(store, LocalStore) else None

    # --- tables, quarantine, documents ------------------------------------------------------

    def write_table(
        self, module: str, version: str, table: str, df: pd.DataFrame | StagedTable
    ) -> str:
        """A prepared table; a staged one is copied batch by batch, never read whole."""
        rel = self._rel(module, version, f"{table}.parquet")
        store = self._store()
        if isinstance(df, StagedTable):
            store.write_parquet_batches(rel, df.schema, df.iter_batches())
        else:
            store.write_parquet(rel, df)
        return store.uri(rel)

    def read_table(self, module: str, version: str, table: str) -> pd.DataFrame:
        return self._store().read_parquet(self._rel(module, version, f"{table}.parquet"))

    def open_table(self, module: str, version: str, table: str) -> pq.ParquetFile:
        """A prepared table for reading batch by batch (an upload never holds all of it)."""
        return self._store().open_parquet(self._rel(module, version, f"{table}.parquet"))

    def has_table(self, module: str, version: str, table: str) -> bool:
        return self._store().exists(self._rel(module, version, f"{table}.parquet"))

    def table_schema(self, module: str, version: str, table: str) -> pa.Schema:
        """A prepared table's schema, from its Parquet footer (the data is not read)."""
        rel = self._rel(module, version, f"{table}.parquet")
        return self._store().parquet_metadata(rel).schema.to_arrow_schema()

    def table_rows(self, module: str, version: str, table: str) -> int:
        """Rows of a prepared table, from its Parquet footer (the data is not read)."""
        return (
            self._store().parquet_metadata(self._rel(module, version, f"{table}.parquet")).num_rows
        )

    def table_sha256(self, module: str, version: str, table: str) -> str:
        """The file's SHA-256, read a chunk at a time."""
        return self._store().sha256(self._rel(module, version, f"{table}.parquet"))

    def write_quarantine(self, module: str, version: str, table: str, df: pd.DataFrame) -> str:
        """Rejected and modified records with their original values (restricted zone)."""
        rel = self._rel(module, version, "quarantine", f"{table}.parquet")
        store = self._store(RESTRICTED)
        store.write_parquet(rel, df)
        return store.uri(rel)

    def write_quarantine_batches(
        self,
        module: str,
        version: str,
        table: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch | pa.Table],
    ) -> str:
        """`write_quarantine` for a quarantine too large to hold: written batch by batch."""
        rel = self._rel(module, version, "quarantine", f"{table}.parquet")
        store = self._store(RESTRICTED)
        parts = (b for t in batches for b in (t.to_batches() if isinstance(t, pa.Table) else [t]))
        store.write_parquet_batches(rel, schema, parts)
        return store.uri(rel)

    def read_quarantine_table(self, module: str, version: str, name: str) -> pd.DataFrame:
        """One quarantine file of the version (a table's, or `<table>__anonymize`)."""
        rel = self._rel(module, version, "quarantine", f"{name}.parquet")
        store = self._store(RESTRICTED)
        return store.read_parquet(rel) if store.exists(rel) else pd.DataFrame()

    def quarantine_actions(self, module: str, version: str, name: str) -> dict[str, int]:
        """Records per action (rejected, modified) in one quarantine file, read from its
        `action` column alone (the checks count; they need no record)."""
        rel = self._rel(module, version, "quarantine", f"{name}.parquet")
        store = self._store(RESTRICTED)
        if not store.exists(rel):
            return {}
        file = store.open_parquet(rel)
        if "action" not in file.schema_arrow.names:
            return {}
        counts: dict[str, int] = {}
        for batch in file.iter_batches(columns=["action"]):
            for row in pc.value_counts(batch.column(0)).to_pylist():
                key = row["values"]
                counts[key] = counts.get(key, 0) + row["counts"]
        return counts

    def _quarantine_rels(self, module: str, version: str) -> list[str]:
        """The version's quarantine files (relative to the restricted zone), in name order."""
        rel = self._rel(module, version, "quarantine")
        return [
            f"{rel}/{name}"
            for name in self._store(RESTRICTED).list(rel)
            if name.endswith(".parquet")
        ]

    def quarantine_files(self, module: str, version: str) -> list[pq.ParquetFile]:
        """The version's quarantine files, opened for reading batch by batch (an upload loads
        the quarantine without holding it: at 10M records it is ~300k rows, ~500 MB in pandas)."""
        store = self._store(RESTRICTED)
        return [store.open_parquet(rel) for rel in self._quarantine_rels(module, version)]

    def quarantine_rows(self, module: str, version: str) -> int:
        """Rows of the version's quarantine, from the files' footers (on S3, ranged GETs)."""
        store = self._store(RESTRICTED)
        rels = self._quarantine_rels(module, version)
        return sum(store.parquet_metadata(rel).num_rows for rel in rels)

    def read_quarantine(self, module: str, version: str) -> pd.DataFrame:
        store = self._store(RESTRICTED)
        parts = [store.read_parquet(rel) for rel in self._quarantine_rels(module, version)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def write_key_map(self, module: str, version: str, table: str, df: pd.DataFrame) -> str:
        """Old -> new keys of records re-keyed by `onKeyConflict: regenerate`."""
        rel = self._rel(module, version, "key_maps", f"{table}.parquet")
        store = self._store(RESTRICTED)
        store.write_parquet(rel, df)
        return store.uri(rel)

    def write_json(self, module: str, version: str, name: str, data: Any) -> str:
        rel = self._rel(module, version, name)
        store = self._store()
        text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
        store.write_bytes(rel, text.encode("utf-8"))
        return store.uri(rel)

    def has_file(self, module: str, version: str, name: str) -> bool:
        return self._store().exists(self._rel(module, version, name))

    def read_json(self, module: str, version: str, name: str) -> Any:
        return json.loads(self._store().read_bytes(self._rel(module, version, name)))

    def write_restricted_text(self, module: str, version: str, name: str, text: str) -> str:
        """Text that may hold restricted values (e.g. a failing script's output), kept for
        data managers; returns where it is."""
        rel = self._rel(module, version, "logs", name)
        store = self._store(RESTRICTED)
        store.write_bytes(rel, text.encode("utf-8", errors="replace"))
        return store.uri(rel)

    def write_current(self, module: str, data: dict[str, Any]) -> str:
        """The module's `current.json` pointer (one atomic write: a temporary file renamed, or
        one S3 PUT)."""
        rel = f"{module}/{CURRENT_FILE}"
        store = self._store()
        store.write_bytes(rel, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
        return store.uri(rel)

    def read_current(self, module: str) -> dict[str, Any] | None:
        rel = f"{module}/{CURRENT_FILE}"
        store = self._store()
        return json.loads(store.read_bytes(rel)) if store.exists(rel) else None

    # --- versions and retention ---------------------------------------------------------------

    def versions(self, module: str) -> list[str]:
        """Versions with anything in either zone (not the `current.json` pointer)."""
        names = set(self._store().list(module)) | set(self._store(RESTRICTED).list(module))
        return sorted(n for n in names if n != CURRENT_FILE and not n.startswith("."))

    def age_seconds(self, module: str, version: str) -> float | None:
        """Seconds since anything of the version was last written (None if it is gone)."""
        rel = self._rel(module, version)
        times = [t for z in (PUBLISHED, RESTRICTED) if (t := self._store(z).modified(rel))]
        return max(0.0, time.time() - max(times)) if times else None

    def delete_version(self, module: str, version: str) -> None:
        for zone in (PUBLISHED, RESTRICTED):
            self._store(zone).delete(self._rel(module, version))
