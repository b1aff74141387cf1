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
import pwd
import re
import secrets as _secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pyarrow as pa
from dagster_aws.s3 import S3Resource
from pydantic import Field

from resources.alerts import AlertsResource
from resources.io_manager import IO_MANAGER_KEY, ParquetIOManager
from resources.masking import Masker
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource
from resources.staged import DEFAULT_BATCH_ROWS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KINDS = ("local", "prod")
# what runs a module's steps when its metadata does not say (see etl_assets/execution.py)
EXECUTORS = ("auto", "in_process", "multiprocess", "k8s")


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
            restricted_previews=_flag(env, "DM_RESTRICTED_PREVIEWS"),
            executor=executor,
            governance=_flag(env, "DM_GOVERNANCE", default=kind == "prod"),
            web_url=(env.get("DM_WEB_PUBLIC_URL") or "").rstrip("/") or "http://127.0.0.1:3000",
            mask_env=tuple(n for n in re.split(r"[\s,]+", env.get("DM_MASK_ENV", "")) if n),
            alert_urls_set=bool((env.get("DM_ALERT_URLS") or "").strip()),
            alert_base_url=(
                env.get("DM_ALERT_BASE_URL")
                or env.get("DM_WEB_PUBLIC_URL")
                or "http://127.0.0.1:3000"
            ).rstrip("/"),
            alert_kafka_topic=env.get("DM_ALERT_KAFKA_TOPIC") or "dm.alerts",
            alert_on_publish=_flag(env, "DM_ALERT_ON_PUBLISH"),
            batch_rows=_count(env, "DM_BATCH_ROWS", DEFAULT_BATCH_ROWS),
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


class PrivacyResource(dg.ConfigurableResource):
    """What the deployment allows Dagster to show of the restricted zone."""

    restricted_previews: bool = Field(
        default=False,
        description="show rows of extracted and clean data in asset metadata (under"
        " dm/restricted/): exposes personal data to every UI user who may see restricted data",
    )


class GovernanceResource(dg.ConfigurableResource):
    """Whether runs must pass the governance gate (etl_assets/governance/gate.py): every
    connection of a module granted to its owners, every script released and unmodified."""

    enabled: bool = Field(
        default=False,
        description="refuse a run whose connections lack a grant or whose scripts are unreleased"
        " or modified (DM_GOVERNANCE; on by default in DM_DEPLOYMENT=prod)",
    )


# the deployment's own secrets: masked in every run, whatever the module
ALWAYS_MASKED = (
    "DM_POSTGRES_URL",
    "DAGSTER_PG_URL",
    "DM_S3_ACCESS_KEY_ID",
    "DM_S3_SECRET_ACCESS_KEY",
    "DM_PSEUDONYM_KEY",
    "DM_PROXY_SECRET",
    "DM_SMTP_PASSWORD",
    "DM_ALERT_URLS",  # apprise URLs may carry SMTP or webhook passwords
)


class SecretsResource(dg.ConfigurableResource):
    """Values that module metadata names by environment variable: connection URLs and secrets,
    pseudonymization keys. Read where the step runs, never stored in config or metadata."""

    generate_missing_keys_in: str | None = Field(
        default=None,
        description="local deployments: a folder where a missing key is generated once and kept",
    )
    mask_env: list[str] = Field(
        default_factory=list,
        description="DM_MASK_ENV: further variables whose values are masked in all output",
    )

    def masker(self, names: Iterable[str] = ()) -> Masker:
        """Masks the values of `names` (a module's secret variables), of the deployment's own
        secrets and of DM_MASK_ENV's variables, wherever a run writes or logs text."""
        wanted = {*names, *ALWAYS_MASKED, *self.mask_env}
        values = [self.get(n) for n in sorted(wanted)]
        values += [self._generated_key(n) for n in sorted(wanted) if not self.get(n)]
        return Masker(values)

    def _generated_key(self, name: str) -> str | None:
        if self.generate_missing_keys_in is None:
            return None
        path = Path(self.generate_missing_keys_in) / f"{name.lower()}.key"
        return path.read_text().strip() if path.is_file() else None

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


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = (env.get(name) or "").strip().lower()
    if value == "":
        return default
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise DeploymentError(f"{name}={value!r}: expected true or false")


def resources_for(deployment: Deployment) -> dict[str, object]:
    """The resources of a deployment; secrets stay `EnvVar`s, read where the run executes."""
    roles = {
        "consumer_role": deployment.consumer_role,
        "data_manager_role": deployment.data_manager_role,
    }
    postgres = (
        PostgresResource(url=dg.EnvVar("DM_POSTGRES_URL"), **roles)
        if deployment.postgres_url_set
        else PostgresResource(embedded_dir=str(deployment.dagster_home / "pgdata"), **roles)
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
            else None,
            mask_env=list(deployment.mask_env),
        ),
        IO_MANAGER_KEY: ParquetIOManager(
            base_dir=deployment.storage_root, batch_rows=deployment.batch_rows
        ),
        "privacy": PrivacyResource(restricted_previews=deployment.restricted_previews),
        "governance": GovernanceResource(enabled=deployment.governance),
        "alerts": AlertsResource(
            urls=_env_or_none("DM_ALERT_URLS", deployment.alert_urls_set),
            base_url=deployment.alert_base_url,
            kafka_topic=deployment.alert_kafka_topic,
            on_publish=deployment.alert_on_publish,
        ),
    }


# --- web sign-in and the audit log (dmetl serve, etl_assets.web, etl_assets.audit) -------------

AUTH_MODES = ("local", "oidc", "proxy")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class OidcSettings:
    """An OpenID Connect provider (authorization code with PKCE); the secret by variable name."""

    issuer: str
    client_id: str
    client_secret: str | None = field(repr=False, default=None)
    scopes: str = "openid email profile"
    roles_claim: str = "groups"


@dataclass(frozen=True)
class ProxySettings:
    """An authenticating reverse proxy: trusted only from `trusted` addresses *with* the secret."""

    trusted: tuple[str, ...]
    secret: str = field(repr=False, default="")
    user_header: str = "X-Forwarded-User"
    email_header: str = "X-Forwarded-Email"
    groups_header: str = "X-Forwarded-Groups"
    secret_header: str = "X-DM-Proxy-Secret"
    logout_url: str | None = None


@dataclass(frozen=True)
class WebSettings:
    """How `dmetl serve` signs users in (see docs/security.md for every variable)."""

    mode: str
    session_secret: bytes = field(repr=False)
    session_max_age: int = 8 * 3600
    public_url: str | None = None
    roles_file: Path | None = None
    oidc: OidcSettings | None = None
    proxy: ProxySettings | None = None


@dataclass(frozen=True)
class AuditSettings:
    """The audit log's keys (never in the database) and where signed checkpoints go."""

    hmac_key: bytes = field(repr=False)
    signing_key: bytes | None = field(repr=False, default=None)
    verify_key: bytes | None = None
    checkpoints: str = ""
    checkpoint_seconds: int = 300


def _secret(env: Mapping[str, str], deployment: Deployment, name: str) -> bytes:
    """A secret from the environment, or (local deployments only) one generated once."""
    value = env.get(name)
    if value:
        return value.encode("utf-8")
    if not deployment.local:
        raise DeploymentError(f"DM_DEPLOYMENT=prod needs {name} set in the environment")
    keys = SecretsResource(generate_missing_keys_in=str(deployment.dagster_home / "secrets"))
    return keys.key(name)


def _int(env: Mapping[str, str], name: str, default: int, unit: str = "seconds") -> int:
    """A positive whole number (`unit`: what it counts, for the error)."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DeploymentError(f"{name}={raw!r}: expected a whole number ({unit})") from None
    if value <= 0:
        raise DeploymentError(f"{name}={raw!r}: expected a positive whole number ({unit})")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").replace("_", "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1000:
        raise DeploymentError(f"{name}={env.get(name)!r}: expected a whole number of rows >= 1000")
    return int(raw)


def _need(env: Mapping[str, str], name: str, why: str) -> str:
    value = env.get(name)
    if not value:
        raise DeploymentError(f"{why} needs {name}")
    return value


def web_settings(deployment: Deployment, environ: Mapping[str, str] | None = None) -> WebSettings:
    """The sign-in mode and its settings: `DM_WEB_AUTH` = local (default) | oidc | proxy."""
    env = os.environ if environ is None else environ
    mode = env.get("DM_WEB_AUTH") or "local"
    if mode not in AUTH_MODES:
        raise DeploymentError(f"DM_WEB_AUTH={mode!r}: expected one of {', '.join(AUTH_MODES)}")
    if mode == "local" and not deployment.local:
        raise DeploymentError("DM_DEPLOYMENT=prod needs DM_WEB_AUTH=oidc or proxy (not local)")
    oidc = proxy = None
    if mode == "oidc":
        why = "DM_WEB_AUTH=oidc"
        oidc = OidcSettings(
            issuer=_need(env, "DM_OIDC_ISSUER", why).rstrip("/"),
            client_id=_need(env, "DM_OIDC_CLIENT_ID", why),
            client_secret=env.get("DM_OIDC_CLIENT_SECRET") or None,
            scopes=env.get("DM_OIDC_SCOPES") or "openid email profile",
            roles_claim=env.get("DM_OIDC_ROLES_CLAIM") or "groups",
        )
        _need(env, "DM_WEB_PUBLIC_URL", why + " (the redirect URI is built from it)")
    if mode == "proxy":
        why = "DM_WEB_AUTH=proxy"
        trusted = tuple(
            a.strip() for a in _need(env, "DM_PROXY_TRUSTED", why).split(",") if a.strip()
        )
        proxy = ProxySettings(
            trusted=trusted,
            secret=_need(env, "DM_PROXY_SECRET", why),
            user_header=env.get("DM_PROXY_USER_HEADER") or "X-Forwarded-User",
            email_header=env.get("DM_PROXY_EMAIL_HEADER") or "X-Forwarded-Email",
            groups_header=env.get("DM_PROXY_GROUPS_HEADER") or "X-Forwarded-Groups",
            logout_url=env.get("DM_PROXY_LOGOUT_URL") or None,
        )
    roles_file = env.get("DM_WEB_ROLES_FILE")
    return WebSettings(
        mode=mode,
        session_secret=_secret(env, deployment, "DM_WEB_SESSION_SECRET"),
        session_max_age=_int(env, "DM_WEB_SESSION_MAX_AGE", 8 * 3600),
        public_url=(env.get("DM_WEB_PUBLIC_URL") or "").rstrip("/") or None,
        roles_file=Path(roles_file) if roles_file else None,
        oidc=oidc,
        proxy=proxy,
    )


def audit_settings(
    deployment: Deployment, environ: Mapping[str, str] | None = None
) -> AuditSettings:
    """The audit HMAC key (`DM_AUDIT_HMAC_KEY`), the Ed25519 checkpoint key
    (`DM_AUDIT_SIGNING_KEY`, or only `DM_AUDIT_VERIFY_KEY` to verify) and the checkpoint place
    (`DM_AUDIT_CHECKPOINTS`: a folder or s3://bucket/prefix)."""
    env = os.environ if environ is None else environ
    verify_key = env.get("DM_AUDIT_VERIFY_KEY")
    signing = env.get("DM_AUDIT_SIGNING_KEY")
    if signing or not verify_key:
        signing_key: bytes | None = _secret(env, deployment, "DM_AUDIT_SIGNING_KEY")
    else:
        signing_key = None
    return AuditSettings(
        hmac_key=_secret(env, deployment, "DM_AUDIT_HMAC_KEY"),
        signing_key=signing_key,
        verify_key=verify_key.encode("utf-8") if verify_key else None,
        checkpoints=env.get("DM_AUDIT_CHECKPOINTS")
        or str(deployment.dagster_home / "audit-checkpoints"),
        checkpoint_seconds=_int(env, "DM_AUDIT_CHECKPOINT_SECONDS", 300),
    )


@dataclass(frozen=True)
class SmtpSettings:
    """Where notification e-mails go (access requests and decisions; alerts may share it).
    `host` None means e-mail is off; the password is read from `DM_SMTP_PASSWORD` only."""

    host: str | None
    port: int = 25
    sender: str = "dmetl@localhost"
    user: str | None = None
    password: str | None = field(repr=False, default=None)
    starttls: bool = False
    timeout_seconds: int = 10

    @property
    def enabled(self) -> bool:
        return bool(self.host)


def smtp_settings(environ: Mapping[str, str] | None = None) -> SmtpSettings:
    """`DM_SMTP_HOST`, `DM_SMTP_PORT` (25), `DM_SMTP_FROM`, `DM_SMTP_USER`, `DM_SMTP_PASSWORD`,
    `DM_SMTP_STARTTLS` (false)."""
    env = os.environ if environ is None else environ
    return SmtpSettings(
        host=env.get("DM_SMTP_HOST") or None,
        port=_int(env, "DM_SMTP_PORT", 25, unit="port number"),
        sender=env.get("DM_SMTP_FROM") or "dmetl@localhost",
        user=env.get("DM_SMTP_USER") or None,
        password=env.get("DM_SMTP_PASSWORD") or None,
        starttls=_flag(env, "DM_SMTP_STARTTLS"),
    )


def s3_resource(deployment: Deployment) -> S3Resource:
    """dagster-aws's S3 resource with the deployment's `DM_S3_*` settings (EnvVars resolved)."""
    kwargs = {
        name: _env_or_none(var, deployment.s3_settings.get(name, False))
        for name, var in S3_VARIABLES.items()
    }
    resource = S3Resource(max_attempts=5, **{k: v for k, v in kwargs.items() if v is not None})
    return resource.process_config_and_initialize()


def local_user_name() -> str:
    """Who runs this process (local sign-in mode), from the account database, not $USER."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid{os.getuid()}"


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
