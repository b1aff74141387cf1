"""The collection protocol: where each table's records come from (scripts and connectors)."""

from __future__ import annotations

import codecs
import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from etl_assets.metadata.base import Name, _Model


class FileConnector(_Model):
    """Local files: one path or a glob, relative to the module folder (or absolute)."""

    type: Literal["file"] = "file"
    path: str
    format: Literal["csv", "json", "jsonl", "txt", "parquet"] | None = Field(
        default=None, description="default: from the file extension"
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = Field(default="utf-8", description="a Python codec name, e.g. latin-1")
    header: bool = True
    columns: list[str] | None = Field(default=None, description="column names for txt/headerless")
    raggedRows: Literal["quarantine", "fail"] = Field(
        default="quarantine",
        description="a CSV row with too few or too many fields: quarantine it (reason"
        " ragged_row) or fail the step naming the line",
    )
    recordsPath: str | None = Field(default=None, description="dotted path to the records in JSON")

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(
                f"unknown encoding {v!r}; expected a codec such as utf-8 or latin-1"
            ) from None
        return v


class ScriptCollector(_Model):
    """A program that prints the table's records as JSON (an array or JSON Lines) on stdout."""

    type: Literal["script"] = "script"
    path: str = Field(description="executable or .py file, relative to the module folder")
    args: list[str] = Field(default_factory=list)
    timeoutSeconds: float = Field(
        default=120,
        gt=0,
        le=86_400,
        description="seconds the script may run; then it and every process it started are"
        " stopped (SIGTERM, SIGKILL 5 s later) and the step fails, retried once at most",
    )
    env: list[str] = Field(
        default_factory=list, description="names of environment variables passed to the script"
    )


class PostgresConnector(_Model):
    """A query against one PostgreSQL connection, or against each of several shards."""

    type: Literal["postgres"] = "postgres"
    connection: Name | None = None
    shards: list[Name] | None = Field(default=None, min_length=1)
    query: str
    watermarkQuery: str | None = Field(
        default=None,
        min_length=1,
        description="a query returning one value (e.g. SELECT max(updated_at) FROM t) that"
        " changes when the source does: the module's source sensor starts a new version when"
        " it changes (only a hash of the value is kept)",
    )

    @model_validator(mode="after")
    def _one_target(self) -> PostgresConnector:
        if (self.connection is None) == (self.shards is None):
            raise ValueError("a postgres source needs exactly one of connection or shards")
        return self


# a column of the query's result: an SQL identifier, quoted by the connector
SQL_COLUMN = r"^[A-Za-z_][A-Za-z0-9_$]{0,63}$"
ISO_BOUND = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$")
SQL_CONNECTION_TYPES = ("mysql", "postgres", "mssql")


class SqlPartition(_Model):
    """One query split into ranges of a column, each range its own extraction step."""

    column: str = Field(pattern=SQL_COLUMN, description="a column of the query's result")
    bounds: list[int | float | str] | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description="ascending split points: n bounds give n + 1 ranges (numbers or ISO dates)",
    )
    count: int | None = Field(default=None, ge=2, le=64, description="equal ranges of min..max")
    min: int | None = Field(default=None, description="with count: the expected smallest value")
    max: int | None = Field(default=None, description="with count: the expected largest value")

    @model_validator(mode="after")
    def _one_way(self) -> SqlPartition:
        if (self.bounds is None) == (self.count is None):
            raise ValueError("a partition needs exactly one of bounds or count (with min and max)")
        if self.count is not None:
            if self.min is None or self.max is None:
                raise ValueError("a partition by count needs min and max (integers)")
            if self.max - self.min + 1 < self.count:
                raise ValueError(f"min..max holds fewer than count={self.count} values")
        elif self.min is not None or self.max is not None:
            raise ValueError("min and max go with count; with bounds, leave them out")
        else:
            self._check_bounds(self.bounds or [])
        return self

    @staticmethod
    def _check_bounds(bounds: list[int | float | str]) -> None:
        texts = [b for b in bounds if isinstance(b, str)]
        if texts and len(texts) != len(bounds):
            raise ValueError("bounds are all numbers or all ISO dates, not a mix")
        for b in texts:
            if not ISO_BOUND.match(b):
                raise ValueError(f"bound {b!r} is not an ISO date or datetime (2024-01-31)")
        keys = [dt.datetime.fromisoformat(b) if isinstance(b, str) else b for b in bounds]
        if any(a >= b for a, b in zip(keys, keys[1:], strict=False)):
            raise ValueError("bounds must be strictly ascending")

    def split_points(self) -> list[int | float | str]:
        """The n - 1 points between n ranges (`bounds`, or evenly spaced over min..max)."""
        if self.bounds is not None:
            return list(self.bounds)
        lo, span, n = self.min or 0, (self.max or 0) - (self.min or 0) + 1, self.count or 1
        return [lo + span * i // n for i in range(1, n)]

    def range_count(self) -> int:
        """How many ranges, and so extraction steps, the partition makes."""
        return len(self.split_points()) + 1


class SqlConnector(_Model):
    """A query against a MySQL/MariaDB, PostgreSQL or SQL Server connection (or each of several
    shards), read into Arrow by connectorx; `partition` splits it into parallel steps."""

    type: Literal["sql"] = "sql"
    connection: Name | None = None
    shards: list[Name] | None = Field(default=None, min_length=1)
    query: str = Field(min_length=1)
    partition: SqlPartition | None = None

    @model_validator(mode="after")
    def _one_target(self) -> SqlConnector:
        if (self.connection is None) == (self.shards is None):
            raise ValueError("a sql source needs exactly one of connection or shards")
        return self


class RestConnector(_Model):
    """A JSON REST API, with auth from a named connection and pagination."""

    type: Literal["rest"] = "rest"
    connection: Name | None = None
    url: str
    params: dict[str, Any] = Field(default_factory=dict)
    recordsPath: str | None = None
    pagination: Literal["none", "page", "offset", "cursor", "link"] = "none"
    pageParam: str = "page"
    sizeParam: str = "per_page"
    pageSize: int = Field(default=100, gt=0, le=1_000_000)
    cursorPath: str | None = None
    cursorParam: str = "cursor"
    maxPages: int = Field(default=10_000, gt=0, le=10_000_000)


class SftpConnector(_Model):
    """A file, or a glob of files, on an SFTP server."""

    type: Literal["sftp"] = "sftp"
    connection: Name
    path: str
    format: Literal["csv", "json", "jsonl", "parquet"] | None = None
    delimiter: str = ","


class KafkaConnector(_Model):
    """A bounded batch of a topic per version, committed once the outbox is durable."""

    type: Literal["kafka"] = "kafka"
    connection: Name | None = None
    topic: str
    groupId: str | None = None
    format: Literal["json"] = "json"
    maxMessages: int | None = Field(default=None, gt=0, le=1_000_000_000)


class S3Connector(_Model):
    """Objects under an S3 prefix matching a pattern."""

    type: Literal["s3"] = "s3"
    connection: Name | None = None
    bucket: str
    prefix: str = ""
    pattern: str = "*"
    format: Literal["csv", "json", "jsonl", "parquet"] | None = None


Connector = Annotated[
    FileConnector
    | ScriptCollector
    | PostgresConnector
    | SqlConnector
    | RestConnector
    | SftpConnector
    | KafkaConnector
    | S3Connector,
    Field(discriminator="type"),
]


class CollectionEntry(_Model):
    """One source of one table: a script or a connector, its source name and priority."""

    table: Name
    source: Name = Field(description="the source's name, kept on every record")
    priority: int = Field(
        default=0,
        ge=-1_000_000,
        le=1_000_000,
        description="higher wins key conflicts (sourcePriority)",
    )
    extract: Connector
    mapping: dict[str, str] = Field(
        default_factory=dict, description="rename source fields to column names"
    )
    watch: bool = Field(
        default=True,
        description="the module's source sensor starts a new version when this source changes"
        " (false: it is read by runs but not watched, e.g. a large SFTP file hashed every minute)",
    )
