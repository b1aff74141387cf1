"""The data module metadata model: every section of the format, validated with pydantic v2.

Field names are the JSON-LD terms of the bundled context (camelCase); `docs/datamodule-format.md`
documents each one and `docs/datamodule.schema.json` is generated from these classes.
Cross-references (keys naming tables and columns) are checked in `etl_assets.references`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from etl_assets._dagster_private import is_valid_cron

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")

Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="lower-case identifier: a letter, then letters, digits or underscores",
    ),
]

DataType = Literal["string", "integer", "number", "boolean", "date", "datetime"]


class _Model(BaseModel):
    """Base: unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# --- field rules -------------------------------------------------------------------------------


class EmptyRule(_Model):
    """What to do with an empty value (null, NaN, or blank text) in this column."""

    strategy: Literal["keep", "fill", "drop"] = Field(
        description="keep: pass through; fill: replace with `value`; drop: reject the record"
    )
    value: Any = Field(default=None, description="the fill value, of the column's type")

    @model_validator(mode="after")
    def _fill_needs_value(self) -> EmptyRule:
        if self.strategy == "fill" and self.value is None:
            raise ValueError("strategy fill needs a value")
        if self.strategy != "fill" and self.value is not None:
            raise ValueError(f"a value is only used with strategy fill, not {self.strategy}")
        return self


class RangeRule(_Model):
    """Allowed values of a column and what happens to a record that violates them."""

    min: int | float | dt.date | dt.datetime | None = None
    max: int | float | dt.date | dt.datetime | None = None
    allowed: list[Any] | None = Field(default=None, description="the only allowed values")
    onViolation: Literal["drop", "clamp", "replace"] | None = Field(
        default=None,
        description="drop the record, clamp to the violated bound, or replace with `replacement`"
        " (allowed sets only)",
    )
    replacement: Any = None

    @model_validator(mode="after")
    def _consistent(self) -> RangeRule:
        if self.min is None and self.max is None and self.allowed is None:
            raise ValueError("a range needs min, max or allowed")
        if self.allowed is not None and (self.min is not None or self.max is not None):
            raise ValueError("a range has either min/max or allowed, not both")
        if self.onViolation is None:
            raise ValueError("a range needs onViolation (drop | clamp)")
        if self.allowed is not None and self.onViolation == "clamp":
            raise ValueError("an allowed set cannot be clamped: use onViolation drop or replace")
        if self.onViolation == "replace" and self.allowed is None:
            raise ValueError("onViolation replace is only for allowed sets; use drop or clamp")
        if self.onViolation == "replace" and self.replacement is None:
            raise ValueError("onViolation replace needs a replacement value")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ForeignKey(_Model):
    """The column's values must exist in `table`.`column` of the same module."""

    table: Name
    column: str


# --- anonymization -----------------------------------------------------------------------------


class Hierarchy(_Model):
    """A generalization hierarchy: a `;`-separated file (one row per value, level 0 first)
    or inline rows."""

    file: str | None = Field(default=None, description="path relative to the module folder")
    rows: list[list[str]] | None = Field(default=None, description="inline rows, level 0 first")

    @model_validator(mode="after")
    def _one_source(self) -> Hierarchy:
        if (self.file is None) == (self.rows is None):
            raise ValueError("a hierarchy needs exactly one of file or rows")
        return self


class Generalization(_Model):
    """Generalize values: bins, fixed-width intervals, a hierarchy, date truncation or a prefix."""

    method: Literal["generalize"] = "generalize"
    hierarchy: Hierarchy | None = None
    bins: list[float] | None = Field(default=None, description="ascending bin edges")
    width: list[float] | None = Field(
        default=None, description="interval widths, one per generalization level"
    )
    truncate: list[Literal["week", "month", "quarter", "year"]] | None = Field(
        default=None, description="date truncation levels, finest first"
    )
    keepPrefix: list[int] | None = Field(
        default=None, description="characters kept at each level, longest first"
    )
    level: int | None = Field(
        default=None,
        ge=0,
        description="the level for a column that is not a quasi-identifier (required there);"
        " quasi-identifiers' levels are chosen by the privacy model search",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Generalization:
        kinds = [
            k for k in ("hierarchy", "bins", "width", "truncate", "keepPrefix") if getattr(self, k)
        ]
        if len(kinds) != 1:
            raise ValueError(
                "generalize needs exactly one of hierarchy, bins, width, truncate, keepPrefix"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        return self


class Suppression(_Model):
    """Replace every value of the column with a marker (null by default)."""

    method: Literal["suppress"] = "suppress"
    marker: str | None = Field(default=None, description="the replacement text; null when omitted")


class Permutation(_Model):
    """Shuffle the column, within equivalence classes of the quasi-identifiers or globally."""

    method: Literal["permute"] = "permute"
    within: Literal["class", "table"] = "class"


class Perturbation(_Model):
    """Add noise to a numeric column; the result still respects the column's range."""

    method: Literal["perturb"] = "perturb"
    noise: Literal["laplace", "gaussian", "multiplicative", "round"]
    scale: float | None = Field(default=None, gt=0)
    epsilon: float | None = Field(default=None, gt=0, description="privacy budget (laplace)")
    sensitivity: float | None = Field(default=None, gt=0)
    base: float | None = Field(default=None, gt=0, description="rounding base (round)")

    @model_validator(mode="after")
    def _parameters(self) -> Perturbation:
        if self.noise == "round":
            if self.base is None:
                raise ValueError("noise round needs base")
        elif self.scale is None and not (self.epsilon and self.sensitivity):
            raise ValueError(f"noise {self.noise} needs scale, or epsilon and sensitivity")
        return self


class Pseudonymization(_Model):
    """Replace identifiers with a keyed hash (HMAC); the key comes from `keyEnv`."""

    method: Literal["pseudonymize"] = "pseudonymize"
    keyEnv: str = Field(default="DM_PSEUDONYM_KEY", pattern=r"^[A-Z_][A-Z0-9_]*$")


class Anatomization(_Model):
    """Publish this sensitive column in a separate table linked to the quasi-identifiers by group."""

    method: Literal["anatomize"] = "anatomize"


ColumnAnonymization = Annotated[
    Generalization | Suppression | Permutation | Perturbation | Pseudonymization | Anatomization,
    Field(discriminator="method"),
]


class PrivacyModel(_Model):
    """A privacy model the table must satisfy after anonymization."""

    type: Literal["k-anonymity", "l-diversity", "t-closeness"]
    k: int | None = Field(default=None, ge=2)
    l: int | None = Field(default=None, ge=2)  # noqa: E741 - the model's own letter
    t: float | None = Field(default=None, gt=0, le=1)
    variant: Literal["distinct", "entropy"] | None = None
    distance: Literal["equal", "ordered", "hierarchical"] | None = Field(
        default=None,
        description="t-closeness ground distance; hierarchical uses the sensitive column's"
        " generalization hierarchy",
    )
    attribute: str | None = Field(default=None, description="the sensitive column (l, t)")

    @model_validator(mode="after")
    def _parameter(self) -> PrivacyModel:
        need = {"k-anonymity": "k", "l-diversity": "l", "t-closeness": "t"}[self.type]
        if getattr(self, need) is None:
            raise ValueError(f"{self.type} needs {need}")
        return self


class Privacy(_Model):
    """The table's privacy requirements: quasi-identifiers, sensitive attributes and models."""

    quasiIdentifiers: list[str] = Field(min_length=1)
    sensitive: list[str] = Field(default_factory=list)
    models: list[PrivacyModel] = Field(min_length=1)
    suppressionLimit: float = Field(default=0.0, ge=0, le=1, description="fraction of records")
    metric: Literal[
        "loss", "entropy", "entropy_monotonic", "discernibility", "discernibility_monotonic"
    ] = Field(default="loss", description="the information loss the search minimizes (ARX's)")
    lossGsFactor: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="ARX's gs-factor of the loss metric: below 0.5 suppression is cheaper,"
        " above 0.5 generalization is",
    )


# --- tables --------------------------------------------------------------------------------------


class Column(_Model):
    """A typed column; it belongs to exactly one table."""

    name: str = Field(min_length=1, max_length=63)
    dataType: DataType
    description: str | None = None
    nullable: bool = True
    format: str | None = Field(
        default=None, description="strftime format to parse dates/datetimes from text"
    )
    empty: EmptyRule | None = None
    range: RangeRule | None = None
    foreignKey: ForeignKey | None = None
    anonymization: list[ColumnAnonymization] = Field(default_factory=list)

    @field_validator("anonymization", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    @field_validator("name")
    @classmethod
    def _no_reserved(cls, v: str) -> str:
        if v.startswith("_dm_"):
            raise ValueError("column names starting with _dm_ are reserved")
        return v

    @model_validator(mode="after")
    def _range_fits_type(self) -> Column:
        r = self.range
        if r is not None and (r.min is not None or r.max is not None):
            if self.dataType in ("string", "boolean"):
                raise ValueError(
                    f"min/max need a number, date or datetime column, not {self.dataType};"
                    " use allowed"
                )
        return self


class Table(_Model):
    """A table of the module: its columns, key and privacy requirements."""

    name: Name
    description: str | None = None
    columns: list[Column] = Field(min_length=1)
    primaryKey: list[str] | None = Field(default=None, min_length=1)
    onKeyConflict: Literal["sourcePriority", "dropAll", "regenerate"] | None = Field(
        default=None, description="how records sharing a primary key are resolved"
    )
    privacy: Privacy | None = None
    strict: bool = Field(default=True, description="keep only declared columns")

    @field_validator("primaryKey", mode="before")
    @classmethod
    def _str_to_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _keys(self) -> Table:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"column names must be unique in a table: {', '.join(dupes)}")
        if self.primaryKey and self.onKeyConflict is None:
            raise ValueError(
                "a primaryKey needs onKeyConflict (sourcePriority | dropAll | regenerate)"
            )
        return self

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


# --- collection protocol -------------------------------------------------------------------------


class FileConnector(_Model):
    """Local files: one path or a glob, relative to the module folder (or absolute)."""

    type: Literal["file"] = "file"
    path: str
    format: Literal["csv", "json", "jsonl", "txt", "parquet"] | None = Field(
        default=None, description="default: from the file extension"
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    header: bool = True
    columns: list[str] | None = Field(default=None, description="column names for txt/headerless")
    recordsPath: str | None = Field(default=None, description="dotted path to the records in JSON")


class ScriptCollector(_Model):
    """A program that prints the table's records as JSON (an array or JSON Lines) on stdout."""

    type: Literal["script"] = "script"
    path: str = Field(description="executable or .py file, relative to the module folder")
    args: list[str] = Field(default_factory=list)
    timeoutSeconds: float = Field(default=600, gt=0)
    env: list[str] = Field(
        default_factory=list, description="names of environment variables passed to the script"
    )


class PostgresConnector(_Model):
    """A query against one PostgreSQL connection, or against each of several shards."""

    type: Literal["postgres"] = "postgres"
    connection: Name | None = None
    shards: list[Name] | None = Field(default=None, min_length=1)
    query: str

    @model_validator(mode="after")
    def _one_target(self) -> PostgresConnector:
        if (self.connection is None) == (self.shards is None):
            raise ValueError("a postgres source needs exactly one of connection or shards")
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
    pageSize: int = Field(default=100, gt=0)
    cursorPath: str | None = None
    cursorParam: str = "cursor"
    maxPages: int = Field(default=10_000, gt=0)


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
    maxMessages: int | None = Field(default=None, gt=0)


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
    priority: int = Field(default=0, description="higher wins key conflicts (sourcePriority)")
    extract: Connector
    mapping: dict[str, str] = Field(
        default_factory=dict, description="rename source fields to column names"
    )


# --- upload, schedule, connections ---------------------------------------------------------------


class PostgresSink(_Model):
    type: Literal["postgres"] = "postgres"
    connection: Name | None = Field(default=None, description="default: DM_POSTGRES_URL")
    schema_: str | None = Field(
        default=None, alias="schema", pattern=NAME_PATTERN, description="default: dm_<module>"
    )
    mode: Literal["snapshot", "append"] = Field(
        default="snapshot",
        description="snapshot: one table per version + a view of the current one;"
        " append: add records whose row hash is new",
    )


class S3Sink(_Model):
    type: Literal["s3"] = "s3"
    connection: Name | None = None
    bucket: str
    prefix: str = ""


class KafkaSink(_Model):
    type: Literal["kafka"] = "kafka"
    connection: Name | None = None
    topic: str
    eventsTopic: str | None = None


Sink = Annotated[PostgresSink | S3Sink | KafkaSink, Field(discriminator="type")]


class Upload(_Model):
    """Where a version is published: a built-in sink or an upload script."""

    sink: Sink | None = None
    script: ScriptCollector | None = None

    @model_validator(mode="after")
    def _one(self) -> Upload:
        if (self.sink is None) == (self.script is None):
            raise ValueError("upload needs exactly one of sink or script")
        return self


class Schedule(_Model):
    """When the module runs by itself."""

    cron: str = Field(description="a cron expression or @hourly, @daily, @weekly, @monthly")
    timezone: str = "UTC"
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if not is_valid_cron(v):
            raise ValueError(f"not a cron expression: {v!r}")
        return v


class Retry(_Model):
    """Step retries with exponential backoff."""

    maxRetries: int = Field(default=3, ge=0, le=20)
    delaySeconds: float = Field(default=5, ge=0)
    backoff: Literal["exponential", "linear"] = "exponential"
    jitter: Literal["none", "full", "plus_minus"] = "plus_minus"


class Connection(_Model):
    """A named external system. Secrets are read from environment variables, never stored here."""

    name: Name
    type: Literal["postgres", "rest", "sftp", "kafka", "s3"]
    urlEnv: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    options: dict[str, Any] = Field(
        default_factory=dict, description="non-secret settings (host, port, bucket, ...)"
    )
    secretEnv: dict[str, str] = Field(
        default_factory=dict,
        description="setting name -> environment variable holding it (password, token, ...)",
    )
    owners: list[str] = Field(default_factory=list)


# --- the module ----------------------------------------------------------------------------------


OWNER = re.compile(r"^(team:[\w.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")


class DataModule(_Model):
    """A data module: tables, collection protocol, upload target and version."""

    context: Any = Field(alias="@context", description="the bundled datamodule context")
    type_: Literal["DataModule"] = Field(default="DataModule", alias="@type")
    id_: str | None = Field(default=None, alias="@id")
    name: Name
    description: str | None = None
    owners: list[str] = Field(
        default_factory=list, description="e-mail addresses or team:<name> (shown in Dagster)"
    )
    version: str = Field(default="0.0.0", description="the last published version (semver)")
    status: Literal["draft", "released"] = "draft"
    schedule: Schedule | None = None
    retentionDays: int = Field(default=30, ge=1, description="days an un-uploaded version is kept")
    autoUpload: bool = False
    retry: Retry = Field(default_factory=Retry)
    license: str | None = None
    connections: list[Connection] = Field(default_factory=list)
    tables: list[Table] = Field(min_length=1)
    collection: list[CollectionEntry] = Field(min_length=1)
    upload: Upload = Field(default_factory=lambda: Upload(sink=PostgresSink()))

    @field_validator("owners")
    @classmethod
    def _owners(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if not OWNER.match(o)]
        if bad:
            raise ValueError(f"owners must be e-mail addresses or team:<name>, got {bad!r}")
        return v

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not SEMVER.match(v):
            raise ValueError(f"version must be MAJOR.MINOR.PATCH, got {v!r}")
        return v

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)

    def entries_for(self, table: str) -> list[CollectionEntry]:
        return [e for e in self.collection if e.table == table]
