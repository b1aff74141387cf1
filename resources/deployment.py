"""The deployment: the one place that reads the environment and maps it to resources.

`Deployment.from_environ()` reads every `DM_*` setting (and `DAGSTER_HOME`) once; `resources_for`
turns a deployment into the resource dictionary the Definitions and the CLI both use. Nothing else
in the project reads `os.environ`: values a module's metadata names by variable (connection URLs
and secrets, pseudonymization keys) are looked up through `SecretsResource`, defined here too.

Two kinds, as in dagster-open-platform's environment helper:

- `local` (default): unset parts fall back to embedded defaults under `DAGSTER_HOME`: PostgreSQL
  from `pgserver` when `DM_POSTGRES_URL` is unset, the outbox and step storage as folders, and
  pseudonymization keys generated once under `$DAGSTER_HOME/secrets/`.
- `prod`: nothing is embedded. `DM_POSTGRES_URL` must be set, and every secret a run needs must
  be in the environment; a missing one fails the run instead of being generated.
"""

from __future__ import annotations

import os
import secrets as _secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pyarrow as pa
from pydantic import Field

from resources.io_manager import IO_MANAGER_KEY, ParquetIOManager
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KINDS = ("local", "prod")
# what runs a module's steps when its metadata does not say (see etl_assets/execution.py)
EXECUTORS = ("in_process", "multiprocess", "k8s")


class DeploymentError(RuntimeError):
    """The environment does not describe a usable deployment (names the variable to set)."""


@dataclass(frozen=True)
class Deployment:
    """Where everything lives, as the environment says (see the README's configuration table)."""

    kind: str
    dagster_home: Path
    modules_dir: Path
    postgres_url_set: bool
    outbox_root: str
    storage_root: str
    s3_settings: Mapping[str, bool] = field(default_factory=dict)
    executor: str = "multiprocess"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Deployment:
        env = os.environ if environ is None else environ
        kind = env.get("DM_DEPLOYMENT", "local") or "local"
        if kind not in KINDS:
            raise DeploymentError(f"DM_DEPLOYMENT={kind!r}: expected one of {', '.join(KINDS)}")
        executor = env.get("DM_EXECUTOR", "multiprocess") or "multiprocess"
        if executor not in EXECUTORS:
            raise DeploymentError(
                f"DM_EXECUTOR={executor!r}: expected one of {', '.join(EXECUTORS)}"
            )
        home = Path(env.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
        if kind == "prod" and not env.get("DM_POSTGRES_URL"):
            raise DeploymentError(
                "DM_DEPLOYMENT=prod needs DM_POSTGRES_URL: the embedded PostgreSQL is for local"
                " use only"
            )
        modules = env.get("DM_MODULES_DIR")
        if modules:
            modules_dir = Path(modules)
        elif (Path.cwd() / "datamodules").is_dir():
            modules_dir = Path.cwd() / "datamodules"
        else:
            modules_dir = PROJECT_ROOT / "datamodules"
        return cls(
            kind=kind,
            dagster_home=home,
            modules_dir=modules_dir,
            postgres_url_set=bool(env.get("DM_POSTGRES_URL")),
            outbox_root=env.get("DM_OUTBOX_ROOT") or str(home / "outbox"),
            storage_root=env.get("DM_STORAGE_ROOT") or str(home / "storage"),
            s3_settings={
                name: bool(env.get(var))
                for name, var in (
                    ("endpoint_url", "DM_S3_ENDPOINT_URL"),
                    ("region_name", "DM_S3_REGION"),
                    ("aws_access_key_id", "DM_S3_ACCESS_KEY_ID"),
                    ("aws_secret_access_key", "DM_S3_SECRET_ACCESS_KEY"),
                )
            },
            executor=executor,
        )

    @property
    def local(self) -> bool:
        return self.kind == "local"

    @property
    def embedded_postgres(self) -> bool:
        """True when PostgreSQL is the embedded server (local, `DM_POSTGRES_URL` unset)."""
        return self.local and not self.postgres_url_set

    def describe_postgres(self) -> str:
        if self.embedded_postgres:
            return f"embedded PostgreSQL under {self.dagster_home / 'pgdata'} (DM_POSTGRES_URL is unset)"
        return "PostgreSQL from DM_POSTGRES_URL"


S3_VARIABLES = {
    "endpoint_url": "DM_S3_ENDPOINT_URL",
    "region_name": "DM_S3_REGION",
    "aws_access_key_id": "DM_S3_ACCESS_KEY_ID",
    "aws_secret_access_key": "DM_S3_SECRET_ACCESS_KEY",
}


class SecretsResource(dg.ConfigurableResource):
    """Values that module metadata names by environment variable: connection URLs and secrets,
    pseudonymization keys. Read where the step runs, never stored in config or metadata."""

    generate_missing_keys_in: str | None = Field(
        default=None,
        description="local deployments: a folder where a missing key is generated once and kept",
    )

    def get(self, name: str) -> str | None:
        """The value of environment variable `name`, or None when unset or empty."""
        value = os.environ.get(name)
        return value or None

    def environment(self, names: list[str] | tuple[str, ...]) -> dict[str, str]:
        """The given variables that are set (for a script's minimal environment)."""
        return {n: os.environ[n] for n in names if n in os.environ}

    def key(self, name: str) -> bytes:
        """A secret key (e.g. HMAC for pseudonyms): the variable, or a generated local one."""
        value = self.get(name)
        if value:
            return value.encode("utf-8")
        if self.generate_missing_keys_in is None:
            raise DeploymentError(f"the secret key {name} is not set in the environment")
        path = Path(self.generate_missing_keys_in) / f"{name.lower()}.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process created it first
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(_secrets.token_hex(32))
        return path.read_text().strip().encode("utf-8")


def _env_or_none(name: str, present: bool) -> dg.EnvVar | None:
    return dg.EnvVar(name) if present else None


def resources_for(deployment: Deployment) -> dict[str, object]:
    """The resources of a deployment; secrets stay `EnvVar`s, read where the run executes."""
    postgres = (
        PostgresResource(url=dg.EnvVar("DM_POSTGRES_URL"))
        if deployment.postgres_url_set
        else PostgresResource(embedded_dir=str(deployment.dagster_home / "pgdata"))
    )
    s3 = {
        f"s3_{name}": _env_or_none(var, deployment.s3_settings.get(name, False))
        for name, var in S3_VARIABLES.items()
    }
    return {
        "postgres": postgres,
        "outbox": OutboxResource(
            root=deployment.outbox_root, **{k: v for k, v in s3.items() if v is not None}
        ),
        "secrets": SecretsResource(
            generate_missing_keys_in=str(deployment.dagster_home / "secrets")
            if deployment.local
            else None
        ),
        IO_MANAGER_KEY: ParquetIOManager(base_dir=deployment.storage_root),
    }


def current() -> Deployment:
    """The deployment this process runs in."""
    return Deployment.from_environ()


def configure_arrow() -> None:
    """Arrow allocates through jemalloc unless ARROW_DEFAULT_MEMORY_POOL says otherwise.

    The default (mimalloc) keeps memory freed by the Parquet reader and short-lived buffers;
    bench/rules.py at 10M rows peaks at 2.74x the data's Arrow size with it, 2.49x with jemalloc.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow build without jemalloc
        pass


def set_dagster_home(deployment: Deployment) -> None:
    """Make the deployment's `DAGSTER_HOME` the process's (the CLI's instance is that one)."""
    deployment.dagster_home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(deployment.dagster_home)
