"""The one interface every sink implements: publish a prepared version, say what happened.

A sink gets a `PublishRequest` (the version's anonymized tables from the outbox and what it
needs to reach its target) and returns a `PublishReport` (rows per table, rows actually added,
where each table went). `publish.version` chooses the sink from the module's `upload` metadata,
records the version in the registry and writes its Croissant metadata; the sinks do not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa

from etl_assets.connections import ResolvedConnection, connection_or_default
from etl_assets.metadata.loader import LoadedModule
from etl_assets.publish.pg_copy import COPY_BATCH_ROWS, ParquetSource
from etl_assets.quarantine import QUARANTINE_SCHEMA
from resources.deployment import SecretsResource
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource
from resources.staged import conform


class OutboxTables(Mapping[str, pd.DataFrame]):
    """The version's prepared tables, read from the outbox only when a sink asks: as a
    DataFrame (`tables[name]`), or batch by batch (`source(name)`, for a streaming sink)."""

    def __init__(self, outbox: OutboxResource, module: str, version: str, names: list[str]):
        self.outbox, self.module, self.version, self.names = outbox, module, version, names

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self.names:
            raise KeyError(name)
        return self.outbox.read_table(self.module, self.version, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def source(self, name: str) -> ParquetSource:
        return ParquetSource(self.outbox.open_table(self.module, self.version, name))


class QuarantineSource:
    """The version's quarantine from the restricted zone, batch by batch as text columns (a sink
    loads it without holding it; `len()` reads only the files' footers)."""

    def __init__(self, outbox: OutboxResource, module: str, version: str):
        self.outbox, self.module, self.version = outbox, module, version

    def __len__(self) -> int:
        return self.outbox.quarantine_rows(self.module, self.version)

    def batches(self, batch_rows: int = COPY_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        for file in self.outbox.quarantine_files(self.module, self.version):
            present = [c for c in QUARANTINE_SCHEMA.names if c in file.schema_arrow.names]
            for batch in file.iter_batches(batch_size=batch_rows, columns=present):
                yield conform(batch, QUARANTINE_SCHEMA)


def table_sources(request: PublishRequest) -> Mapping[str, Any]:
    """The request's tables as batch sources when they come from the outbox, else as given."""
    tables = request.tables
    if isinstance(tables, OutboxTables):
        return {name: tables.source(name) for name in tables}
    return tables


@dataclass
class PublishRequest:
    """A version to publish and what a sink may use to do it."""

    loaded: LoadedModule
    version: str
    tables: Mapping[str, pd.DataFrame]
    quarantine: pd.DataFrame | QuarantineSource
    outbox: OutboxResource
    postgres: PostgresResource
    secrets: SecretsResource
    run_id: str | None = None
    log: Any = None

    @property
    def module(self) -> str:
        return self.loaded.name

    def connection(self, name: str | None, kind: str) -> ResolvedConnection:
        return connection_or_default(self.loaded.model, name, kind, self.secrets.get)

    def info(self, message: str) -> None:
        if self.log is not None:
            self.log.info(message)


@dataclass
class PublishReport:
    """What a sink did: rows per published table, rows actually added, where each went."""

    sink: str
    rows: dict[str, int] = field(default_factory=dict)
    inserted: dict[str, int] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)
    location: str = ""
    """where the version as a whole went (a database and schema, a bucket prefix, a topic)"""
    registered: bool = False
    """the sink recorded the version in the deployment's registry in its own transaction"""
    current_version: str | None = None
    """the version consumers are served after this upload (the highest published one)"""
    served: dict[str, str] = field(default_factory=dict)
    """table -> the relation that serves the current version, when this version is current"""
    seconds: dict[str, float] = field(default_factory=dict)
    """durations of the sink's phases (postgres: `load`, and `swap`, the part readers wait on)"""
    croissant_path: str | None = None


class Sink(Protocol):
    """Where a published version goes (PostgreSQL, S3, Kafka, an upload script)."""

    def publish(self, request: PublishRequest) -> PublishReport: ...
