"""The module: upload target, schedule, retries, connections, and the DataModule itself."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

import dagster as dg
from pydantic import Field, field_validator, model_validator

from etl_assets.metadata.base import ENV_NAME, NAME_PATTERN, SEMVER, Name, _Model
from etl_assets.metadata.collection import CollectionEntry, ScriptCollector
from etl_assets.metadata.execution import Execution
from etl_assets.metadata.tables import Table


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
    shrinkLimit: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="the largest fraction of a table's rows in the current version that a new"
        " version may lose before the upload is stopped (1: no limit)",
    )
    allowEmpty: bool = Field(
        default=False,
        description="let a version with an empty table replace a current version that has rows",
    )

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
        if not _dagster_accepts(v, "UTC"):
            raise ValueError(
                f"not a cron expression: {v!r}; expected 5 fields or @hourly, @daily, @weekly,"
                " @monthly"
            )
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        if not _dagster_accepts("@daily", v):
            raise ValueError(f"timezone {v!r} is not an IANA time zone (e.g. Europe/Berlin)")
        return v

    @model_validator(mode="after")
    def _window(self) -> Schedule:
        if self.start and self.end and _naive(self.start) >= _naive(self.end):
            raise ValueError(f"start {self.start} is not before end {self.end}")
        return self


def _dagster_accepts(cron: str, timezone: str) -> bool:
    """The check the code location makes when it builds the schedule (Dagster's public API)."""
    try:
        dg.ScheduleDefinition(
            name="metadata_check",
            cron_schedule=cron,
            job_name="metadata_check",
            execution_timezone=timezone,
        )
    except dg.DagsterInvalidDefinitionError:
        return False
    return True


def _naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


class Retry(_Model):
    """Step retries with exponential backoff."""

    maxRetries: int = Field(default=3, ge=0, le=20)
    delaySeconds: float = Field(default=5, ge=0, le=86_400)
    backoff: Literal["exponential", "linear"] = "exponential"
    jitter: Literal["none", "full", "plus_minus"] = "plus_minus"


SECRET_OPTION = re.compile(r"(?i)(password|passwd|secret|token|private_key|api_key|apikey)")
# what a connection of each type needs to reach its server when urlEnv does not give it
REACH = {
    "postgres": ("host",),
    "mysql": ("host", "user"),
    "mssql": ("host", "user"),
    "sftp": ("host", "username"),
    "kafka": ("bootstrap_servers",),
}


class Connection(_Model):
    """A named external system. Secrets are read from environment variables, never stored here."""

    name: Name
    type: Literal["postgres", "mysql", "mssql", "rest", "sftp", "kafka", "s3"]
    urlEnv: str | None = Field(default=None, pattern=ENV_NAME)
    options: dict[str, Any] = Field(
        default_factory=dict, description="non-secret settings (host, port, bucket, ...)"
    )
    secretEnv: dict[str, Annotated[str, Field(pattern=ENV_NAME)]] = Field(
        default_factory=dict,
        description="setting name -> environment variable holding it (password, token, ...)",
    )
    owners: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _reachable(self) -> Connection:
        secrets = [k for k in self.options if SECRET_OPTION.search(k)]
        if secrets:
            raise ValueError(
                f"options {', '.join(map(repr, secrets))} look secret: name the environment"
                " variable that holds it in secretEnv instead"
            )
        if self.urlEnv is None:
            missing = [k for k in REACH.get(self.type, ()) if not self.options.get(k)]
            if missing:
                raise ValueError(
                    f"a {self.type} connection needs urlEnv or options."
                    + " and options.".join(missing)
                    + " to reach its server"
                )
        if self.type == "sftp" and not ({"password", "private_key"} & set(self.secretEnv)):
            raise ValueError("an sftp connection needs secretEnv.password or secretEnv.private_key")
        return self


# --- the module ----------------------------------------------------------------------------------


class KeepPublished(_Model):
    """Which published versions keep their data; `dm_version_retention` removes the others'
    tables and outbox folders. A version is kept when either limit keeps it; the current one
    always is."""

    versions: int | None = Field(
        default=None, ge=1, description="keep the N highest published versions (and the current)"
    )
    days: int | None = Field(
        default=None, ge=1, le=36_500, description="keep versions published less than D days ago"
    )

    @model_validator(mode="after")
    def _some_limit(self) -> KeepPublished:
        if self.versions is None and self.days is None:
            raise ValueError("keepPublished needs versions and/or days (omit it to keep all)")
        return self


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
    retentionDays: int = Field(
        default=30, ge=1, le=36_500, description="days an un-uploaded version is kept"
    )
    keepPublished: KeepPublished | None = Field(
        default=None,
        description="published versions to keep (default: all); older ones expire on schedule",
    )
    autoUpload: bool = False
    retry: Retry = Field(default_factory=Retry)
    execution: Execution = Field(default_factory=Execution)
    license: str | None = Field(
        default=None,
        description="the license of published versions, ideally an SPDX or license URL;"
        " without one, the Croissant metadata says that no rights are granted",
    )
    citeAs: str | None = Field(
        default=None,
        description="how to cite the published versions (BibTeX recommended); without it the"
        " Croissant metadata has a BibTeX entry built from name, owners and version",
    )
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
