"""Parquet between assets: one file (or staged table) per asset and version partition, written
atomically.

An asset that streams writes a staged table (resources/staged.py) through `stage()` and returns
its handle; the next asset gets the handle and reads it batch by batch. DataFrames (and dicts of
them) are stored as one Parquet file each, as before.

Step storage holds the extracted and cleaned records, so it is restricted as a whole: files 0600,
folders 0700 (and on shared storage, readable only by the run workers' account)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
from pydantic import Field

from resources.staged import DEFAULT_BATCH_ROWS, STAGED_SUFFIX, StagedTable, StagedWriter
from resources.stores import read_parquet, write_parquet_atomic


def _file(path: Path) -> Path:
    # not with_suffix: a version such as 1.0.0 has dots of its own
    return path.parent / f"{path.name}.parquet"


def _staged(path: Path) -> Path:
    return path.parent / f"{path.name}{STAGED_SUFFIX}"


SCRATCH_INFIX = ".scratch-"


def _stored_for(name: str, partition: str) -> bool:
    """Whether a file or folder named `name` is what an asset stored for `partition`."""
    if name in (partition, f"{partition}.parquet", f"{partition}{STAGED_SUFFIX}"):
        return True
    return name.startswith(f"{partition}{SCRATCH_INFIX}") and name.endswith(STAGED_SUFFIX)


IO_MANAGER_KEY = "dm_io_manager"


class StoredTables(Mapping[str, pd.DataFrame]):
    """The tables an asset stored as a dict, read only when asked for: a step that needs one
    table, or a few columns of one (a child's foreign keys), never holds them all."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._names = sorted(p.stem for p in folder.glob("*.parquet"))

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._names:
            raise KeyError(name)
        return read_parquet(self.folder / f"{name}.parquet")

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def columns(self, name: str, columns: list[str]) -> pd.DataFrame:
        """`columns` of table `name` (those it has)."""
        file = self.folder / f"{name}.parquet"
        present = [c for c in columns if c in pq.read_schema(file).names]
        return read_parquet(file, columns=present)

    def num_rows(self, name: str) -> int:
        return pq.read_metadata(self.folder / f"{name}.parquet").num_rows


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores DataFrames (or dicts of them) under `<base>/<asset key>/<partition>.parquet`, and
    staged tables under `<base>/<asset key>/<partition>.staged/`."""

    base_dir: str = Field(description="a folder shared by every run worker")
    batch_rows: int = Field(
        default=DEFAULT_BATCH_ROWS, description="rows per record batch (DM_BATCH_ROWS)"
    )

    def path_for(self, asset_key: dg.AssetKey, partition: str | None) -> Path:
        return Path(self.base_dir).joinpath(*asset_key.path) / (partition or "__all__")

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Path:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return self.path_for(context.asset_key, partition)

    def stage(self, asset_key: dg.AssetKey, partition: str | None) -> StagedWriter:
        """A writer for the asset's staged table of `partition` (published on `close()`)."""
        path = _staged(self.path_for(asset_key, partition))
        return StagedWriter(path, base=Path(self.base_dir), batch_rows=self.batch_rows)

    def scratch(self, asset_key: dg.AssetKey, partition: str | None, name: str) -> StagedWriter:
        """A writer for a step's own working table (`name`) next to the asset's: restricted
        like all step storage; the step removes it when done, a discarded version with it."""
        path = self.path_for(asset_key, partition)
        path = path.parent / f"{path.name}{SCRATCH_INFIX}{name}{STAGED_SUFFIX}"
        return StagedWriter(path, base=Path(self.base_dir), batch_rows=self.batch_rows)

    def store_tables(
        self, asset_key: dg.AssetKey, partition: str | None, tables: Mapping[str, pd.DataFrame]
    ) -> StoredTables:
        """Write an asset's tables (one Parquet file each) and return their handle, which the
        asset returns as its output. Dagster's in-process execution (`dmetl run`) keeps every
        output value until the run ends: a handle costs nothing there, the frames would stay
        in memory for every later step (a 1M-row table: ~100 MB)."""
        return self._write_tables(self.path_for(asset_key, partition), tables)

    def _write_tables(self, path: Path, tables: Mapping[str, pd.DataFrame]) -> StoredTables:
        for name, df in tables.items():
            write_parquet_atomic(df, path / f"{name}.parquet", base=Path(self.base_dir))
        return StoredTables(path)

    def _stored(self, path: Path) -> pd.DataFrame | StagedTable:
        staged = _staged(path)
        if staged.is_dir():
            return StagedTable.open(staged, self.batch_rows)
        return read_parquet(_file(path))

    def stored(self, asset_key: dg.AssetKey, partition: str | None) -> pd.DataFrame | StagedTable:
        """What an asset stored for a partition, as stored: a staged table is not read."""
        return self._stored(self.path_for(asset_key, partition))

    def read(self, asset_key: dg.AssetKey, partition: str | None) -> pd.DataFrame:
        """What an asset stored for a partition (for checks that need a second asset's data)."""
        stored = self._stored(self.path_for(asset_key, partition))
        return stored.to_pandas() if isinstance(stored, StagedTable) else stored

    def delete_partition(self, module: str, partition: str) -> list[str]:
        """Delete what every asset of `module` stored for `partition` (a discarded version) and
        its Kafka batch plans (the next version re-reads from the committed offsets); returns
        what it removed (asset keys as paths)."""
        removed = []
        plans = Path(self.base_dir) / "_kafka_plans" / module / partition  # Kafka batch plans
        if plans.is_dir():
            shutil.rmtree(plans)
            removed.append(f"_kafka_plans/{module}")
        root = Path(self.base_dir) / module
        if not root.is_dir():
            return removed
        for found in sorted(root.rglob(f"{partition}*")):
            if not found.exists() or not _stored_for(found.name, partition):
                continue
            removed.append("/".join(found.parent.relative_to(Path(self.base_dir)).parts))
            if found.is_dir():
                shutil.rmtree(found)
            else:
                found.unlink()
        return list(dict.fromkeys(removed))

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        if obj is None:
            return
        path = self._path(context)
        if isinstance(obj, StagedTable):
            if obj.path != _staged(path):
                raise ValueError(f"a staged table for {path} was written to {obj.path}")
            _file(path).unlink(missing_ok=True)  # a DataFrame an older run stored
        elif isinstance(obj, StoredTables):
            if obj.folder != path:
                raise ValueError(f"tables for {path} were written to {obj.folder}")
        elif isinstance(obj, dict):
            self._write_tables(path, obj)
        elif isinstance(obj, pd.DataFrame):
            write_parquet_atomic(obj, _file(path), base=Path(self.base_dir))
            if _staged(path).is_dir():  # a staged table an older run stored
                StagedTable.remove(_staged(path))
        else:
            raise TypeError(f"ParquetIOManager stores DataFrames, got {type(obj).__name__}")

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | StagedTable | StoredTables:
        path = self._path(context)
        if path.is_dir():
            return StoredTables(path)
        return self._stored(path)
