"""`Deployment`: where everything lives, read once from the `DM_*` variables and `DAGSTER_HOME`.

Two kinds, as in dagster-open-platform's environment helper:

- `local` (default): unset parts fall back to embedded defaults under `DAGSTER_HOME`: PostgreSQL
  from `pgserver` when `DM_POSTGRES_URL` is unset, the outbox and step storage as folders, and
  pseudonymization keys generated once under `$DAGSTER_HOME/secrets/`.
- `prod`: nothing is embedded. `DM_POSTGRES_URL` must be set, and every secret a run needs must
  be in the environment; a missing one fails the run instead of being generated.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from resources.deployment.values import DeploymentError, flag, row_count
from resources.staged import DEFAULT_BATCH_ROWS

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
KINDS = ("local", "prod")
# what runs a module's steps when its metadata does not say (see etl_assets/execution.py)
EXECUTORS = ("auto", "in_process", "multiprocess", "k8s")


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
    consumer_role: str = "dm_consumer"
    data_manager_role: str = "dm_data_manager"
    restricted_previews: bool = False
    executor: str = "auto"
    # connection grants and released scripts are enforced at run start (etl_assets/governance)
    governance: bool = False
    # where `dmetl serve` is reached (DM_WEB_PUBLIC_URL); assets link to its console pages
    web_url: str = "http://127.0.0.1:3000"
    mask_env: tuple[str, ...] = ()
    """DM_MASK_ENV: names of further variables whose values are masked in all output"""
    alert_urls_set: bool = False  # DM_ALERT_URLS (secret: an EnvVar, read where alerts are sent)
    alert_base_url: str = "http://127.0.0.1:3000"
    alert_kafka_topic: str = "dm.alerts"
    alert_on_publish: bool = False
    batch_rows: int = DEFAULT_BATCH_ROWS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Deployment:
        env = os.environ if environ is None else environ
        kind = env.get("DM_DEPLOYMENT", "local") or "local"
        if kind not in KINDS:
            raise DeploymentError(f"DM_DEPLOYMENT={kind!r}: expected one of {', '.join(KINDS)}")
        executor = env.get("DM_EXECUTOR", "auto") or "auto"
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
            consumer_role=env.get("DM_PG_CONSUMER_ROLE") or "dm_consumer",
            data_manager_role=env.get("DM_PG_DATA_MANAGER_ROLE") or "dm_data_manager",
            restricted_previews=flag(env, "DM_RESTRICTED_PREVIEWS"),
            executor=executor,
            governance=flag(env, "DM_GOVERNANCE", default=kind == "prod"),
            web_url=(env.get("DM_WEB_PUBLIC_URL") or "").rstrip("/") or "http://127.0.0.1:3000",
            mask_env=tuple(n for n in re.split(r"[\s,]+", env.get("DM_MASK_ENV", "")) if n),
            alert_urls_set=bool((env.get("DM_ALERT_URLS") or "").strip()),
            alert_base_url=(
                env.get("DM_ALERT_BASE_URL")
                or env.get("DM_WEB_PUBLIC_URL")
                or "http://127.0.0.1:3000"
            ).rstrip("/"),
            alert_kafka_topic=env.get("DM_ALERT_KAFKA_TOPIC") or "dm.alerts",
            alert_on_publish=flag(env, "DM_ALERT_ON_PUBLISH"),
            batch_rows=row_count(env, "DM_BATCH_ROWS", DEFAULT_BATCH_ROWS),
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


def current() -> Deployment:
    """The deployment this process runs in."""
    return Deployment.from_environ()
