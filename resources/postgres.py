"""PostgreSQL: a server URL, or an embedded server (pgserver) for local deployments."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pgserver
import psycopg
from pydantic import Field

from resources.masking import normalize_url, redact_url

_EMBEDDED: dict[str, object] = {}
_LOCK = threading.Lock()


def redact(url: str) -> str:
    """The URL with any password replaced, safe for logs and metadata."""
    return redact_url(url)


def embedded_url(data_dir: Path) -> str:
    """Start (once per process) an embedded PostgreSQL in `data_dir` and return its URL."""
    key = str(data_dir.resolve())
    with _LOCK:
        if key not in _EMBEDDED:
            data_dir.mkdir(parents=True, exist_ok=True)
            _EMBEDDED[key] = pgserver.get_server(data_dir, cleanup_mode=None)
        return _EMBEDDED[key].get_uri("postgres")  # type: ignore[attr-defined]


class PostgresResource(dg.ConfigurableResource):
    """A PostgreSQL connection with connection-level retries and exponential backoff: the server
    at `url`, or (local deployments only) an embedded server whose data lives in `embedded_dir`."""

    url: str | None = Field(default=None, description="libpq URL (never logged; shown redacted)")
    embedded_dir: str | None = Field(
        default=None, description="data folder of an embedded server (pgserver), when url is unset"
    )
    connect_retries: int = Field(default=3, ge=0)
    connect_backoff_seconds: float = Field(default=0.5, ge=0)
    connect_timeout_seconds: int = Field(default=10, ge=1)
    consumer_role: str = Field(
        default="dm_consumer", description="reads published relations and the registry"
    )
    data_manager_role: str = Field(
        default="dm_data_manager", description="also reads the restricted schemas"
    )

    def resolved_url(self) -> str:
        if self.url:
            return self.url
        if self.embedded_dir:
            return embedded_url(Path(self.embedded_dir))
        raise RuntimeError("PostgresResource needs url (or embedded_dir in a local deployment)")

    @property
    def embedded(self) -> bool:
        return not self.url and bool(self.embedded_dir)

    @property
    def display_url(self) -> str:
        return redact(self.resolved_url())

    @contextmanager
    def connect(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A connection; failures to connect are retried with exponential backoff and jitter."""
        url = normalize_url(self.resolved_url())  # a password may hold an unescaped @ : /
        attempt = 0
        while True:
            try:
                conn = psycopg.connect(
                    url, autocommit=autocommit, connect_timeout=self.connect_timeout_seconds
                )
                break
            except psycopg.OperationalError as exc:
                if attempt >= self.connect_retries:
                    raise psycopg.OperationalError(
                        f"cannot connect to PostgreSQL at {redact(url)} after {attempt + 1}"
                        f" attempts: {redact(str(exc)).strip()}"
                    ) from None
                delay = self.connect_backoff_seconds * (2**attempt)
                time.sleep(delay * random.uniform(0.5, 1.5))
                attempt += 1
        try:
            yield conn
        finally:
            conn.close()
