"""The outbox: prepared versions waiting for review and upload, as Parquet per table."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
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


def read_parquet(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas(types_mapper=pd.ArrowDtype)


class OutboxResource(dg.ConfigurableResource):
    """A local outbox root: `<root>/<module>/<version>/{<table>.parquet, quarantine/, ...}`."""

    root: str | None = Field(default=None, description="default: $DAGSTER_HOME/outbox")

    def base(self) -> Path:
        from etl_assets.settings import outbox_root

        return Path(self.root or outbox_root())

    def version_dir(self, module: str, version: str) -> Path:
        return self.base() / module / version

    def table_path(self, module: str, version: str, table: str) -> Path:
        return self.version_dir(module, version) / f"{table}.parquet"

    def quarantine_path(self, module: str, version: str, table: str) -> Path:
        return self.version_dir(module, version) / "quarantine" / f"{table}.parquet"

    def write_table(self, module: str, version: str, table: str, df: pd.DataFrame) -> Path:
        path = self.table_path(module, version, table)
        write_parquet_atomic(df, path)
        return path

    def read_table(self, module: str, version: str, table: str) -> pd.DataFrame:
        return read_parquet(self.table_path(module, version, table))

    def write_quarantine(self, module: str, version: str, table: str, df: pd.DataFrame) -> Path:
        path = self.quarantine_path(module, version, table)
        write_parquet_atomic(df, path)
        return path

    def write_key_map(self, module: str, version: str, table: str, df: pd.DataFrame) -> Path:
        """Old -> new keys of records re-keyed by `onKeyConflict: regenerate`."""
        path = self.version_dir(module, version) / "key_maps" / f"{table}.parquet"
        write_parquet_atomic(df, path)
        return path

    def read_quarantine(self, module: str, version: str) -> pd.DataFrame:
        folder = self.version_dir(module, version) / "quarantine"
        parts = [read_parquet(p) for p in sorted(folder.glob("*.parquet"))]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def write_json(self, module: str, version: str, name: str, data: Any) -> Path:
        path = self.version_dir(module, version) / name
        write_text_atomic(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", path)
        return path

    def read_json(self, module: str, version: str, name: str) -> Any:
        return json.loads((self.version_dir(module, version) / name).read_text("utf-8"))

    def versions(self, module: str) -> list[str]:
        folder = self.base() / module
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def delete_version(self, module: str, version: str) -> None:
        shutil.rmtree(self.version_dir(module, version), ignore_errors=True)
