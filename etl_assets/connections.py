"""Named connections: a module's `connections` entry resolved against the secrets lookup.

Non-secret settings come from `options`; secrets come only from the environment variables named
in `secretEnv` (and the URL from `urlEnv`), read through the deployment's `SecretsResource` (the
`lookup` argument). Secret values never appear in reprs or errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import psycopg

from etl_assets.errors import ExtractionError
from etl_assets.metadata import DataModule
from resources.masking import normalize_url, redact_url

# environment defaults for connectors that name no connection
DEFAULT_URL_ENV = {
    "postgres": "DM_POSTGRES_URL",
    "kafka": "DM_KAFKA_BOOTSTRAP",
    "s3": "DM_S3_ENDPOINT_URL",
}


Lookup = Callable[[str], str | None]


class ConnectionError_(ExtractionError):
    """A named connection is unknown or misconfigured (e.g. a secret's variable is unset)."""


def secret_names(model: DataModule) -> list[str]:
    """Every environment variable the module's runs read a secret from: connection URLs and
    secrets (`urlEnv`, `secretEnv`), pseudonymization keys (`keyEnv`) and the variables passed
    to its scripts (`env`). Their values are masked in whatever a run writes or logs."""
    names: set[str] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and key in ("urlEnv", "keyEnv", "secretEnv", "env"):
            names.add(node)

    dump = model.model_dump()
    walk(dump)
    for conn in dump.get("connections", []):
        names.update((conn.get("secretEnv") or {}).values())
    return sorted(names)


@dataclass(frozen=True)
class ResolvedConnection:
    """A connection ready to use: its type, URL and settings (secrets included, never shown)."""

    name: str
    type: str
    url: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    secret_keys: frozenset[str] = frozenset()

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)

    def require(self, key: str) -> Any:
        """A setting that must be present; the error names the connection and the setting."""
        if key not in self.settings or self.settings[key] in (None, ""):
            raise ConnectionError_(
                f"connection {self.name!r} ({self.type}) needs the setting {key!r}:"
                f" put it in options or, if secret, in secretEnv"
            )
        return self.settings[key]

    @property
    def display_url(self) -> str | None:
        return redact_url(self.url) if self.url else None

    def public_settings(self) -> dict[str, Any]:
        """Settings with secret values replaced by `***` (for logs and metadata)."""
        return {k: ("***" if k in self.secret_keys else v) for k, v in self.settings.items()}

    def __repr__(self) -> str:
        return (
            f"ResolvedConnection(name={self.name!r}, type={self.type!r},"
            f" url={self.display_url!r}, settings={self.public_settings()!r})"
        )

    __str__ = __repr__


def _env(lookup: Lookup, name: str, conn: str, purpose: str) -> str:
    value = lookup(name)
    if value is None or value == "":
        raise ConnectionError_(
            f"connection {conn!r}: environment variable {name} ({purpose}) is not set"
        )
    return value


def resolve_connection(module: DataModule, name: str, lookup: Lookup) -> ResolvedConnection:
    """The module's connection `name` with its URL and secrets read from the environment."""
    conn = next((c for c in module.connections if c.name == name), None)
    if conn is None:
        declared = ", ".join(c.name for c in module.connections) or "none"
        raise ConnectionError_(
            f"module {module.name!r} has no connection named {name!r} (declared: {declared})"
        )
    url = _env(lookup, conn.urlEnv, name, "its URL") if conn.urlEnv else None
    settings = dict(conn.options)
    for setting, var in conn.secretEnv.items():
        settings[setting] = _env(lookup, var, name, f"secret {setting!r}")
    return ResolvedConnection(
        name=name,
        type=conn.type,
        url=url,
        settings=settings,
        secret_keys=frozenset(conn.secretEnv),
    )


def connection_or_default(
    module: DataModule, name: str | None, kind: str | tuple[str, ...], lookup: Lookup
) -> ResolvedConnection:
    """The named connection, or the deployment default for `kind` from `DM_*` variables;
    `kind` may list several types (a sql source reads mysql, postgres or mssql connections)."""
    if name is not None:
        resolved = resolve_connection(module, name, lookup)
        kinds = (kind,) if isinstance(kind, str) else kind
        if resolved.type not in kinds:
            raise ConnectionError_(
                f"connection {name!r} is of type {resolved.type!r}, but a"
                f" {' or '.join(kinds)} connector uses it"
            )
        return resolved
    if not isinstance(kind, str):
        raise ConnectionError_(f"a {' or '.join(kind)} connector needs a named connection")
    var = DEFAULT_URL_ENV.get(kind)
    url = lookup(var) if var else None
    settings: dict[str, Any] = {}
    secret_keys: set[str] = set()
    if kind == "s3":
        for key, env in (
            ("region_name", "DM_S3_REGION"),
            ("aws_access_key_id", "DM_S3_ACCESS_KEY_ID"),
            ("aws_secret_access_key", "DM_S3_SECRET_ACCESS_KEY"),
        ):
            if value := lookup(env):
                settings[key] = value
        secret_keys.add("aws_secret_access_key")
    elif url is None:
        raise ConnectionError_(
            f"the {kind} connector names no connection and {var} is not set:"
            f" declare a connection in the module or set {var}"
        )
    return ResolvedConnection(
        name=f"default {kind}",
        type=kind,
        url=url,
        settings=settings,
        secret_keys=frozenset(secret_keys),
    )


def postgres_url(conn: ResolvedConnection) -> str:
    """A libpq URL from `url`, or from host/port/dbname/user/password settings."""
    if conn.url:
        return normalize_url(conn.url)
    s = conn.settings
    if not s.get("host"):
        raise ConnectionError_(f"connection {conn.name!r} (postgres) needs urlEnv or options.host")
    auth = quote(str(s.get("user", "postgres")), safe="")
    if s.get("password"):
        auth += ":" + quote(str(s["password"]), safe="")
    port = f":{s['port']}" if s.get("port") else ""
    query = f"?sslmode={s['sslmode']}" if s.get("sslmode") else ""
    return f"postgresql://{auth}@{s['host']}{port}/{quote(str(s.get('dbname', 'postgres')))}{query}"


# connectorx URL scheme and default port per SQL connection type
SQL_SCHEMES = {"postgres": ("postgresql", 5432), "mysql": ("mysql", 3306), "mssql": ("mssql", 1433)}


def sql_url(conn: ResolvedConnection) -> str:
    """A connectorx URL (`mysql://`, `postgresql://`, `mssql://`) from `url`, or from host, port,
    dbname, user and the secret password (a libpq key=value string becomes a URL)."""
    scheme, port = SQL_SCHEMES[conn.type]
    if conn.type == "postgres":
        url = postgres_url(conn)
        return url if re.match(r"^postgres(ql)?://", url) else _libpq_to_url(url, conn.name)
    if conn.url:
        if not conn.url.startswith(f"{scheme}://"):
            raise ConnectionError_(
                f"connection {conn.name!r} ({conn.type}): its URL must start with {scheme}://"
            )
        return normalize_url(conn.url)
    s = conn.settings
    host, user = conn.require("host"), conn.require("user")
    auth = quote(str(user), safe="")
    if s.get("password"):
        auth += ":" + quote(str(s["password"]), safe="")
    db = quote(str(s["dbname"]), safe="") if s.get("dbname") else ""
    return f"{scheme}://{auth}@{host}:{s.get('port') or port}/{db}"


def _libpq_to_url(conninfo: str, name: str) -> str:
    """`host=... dbname=...` as a postgresql:// URL (connectorx takes URLs only)."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        raise ConnectionError_(
            f"connection {name!r} (postgres): its URL is neither a postgresql:// URL nor a libpq"
            " key=value string"
        ) from None
    auth = quote(str(params.pop("user", "postgres")), safe="")
    password = params.pop("password", None)
    if password:
        auth += ":" + quote(str(password), safe="")
    host = params.pop("host", "127.0.0.1")
    port = params.pop("port", 5432)
    db = quote(str(params.pop("dbname", "postgres")), safe="")
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"postgresql://{auth}@{host}:{port}/{db}" + (f"?{query}" if query else "")
