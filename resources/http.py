"""HTTP for REST sources: auth from a named connection, retries on 429/5xx honouring
Retry-After, connection-level retries with exponential backoff; errors never show secrets."""

from __future__ import annotations

import email.utils
import random
import re
import time
from typing import Any

import dagster as dg
import requests
from pydantic import Field

from resources import masking

RETRY_STATUS = {429, 500, 502, 503, 504}


class HttpError(RuntimeError):
    """An HTTP request failed; `retryable` when trying later may help (outage, 429, 5xx)."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


SECRET_PARAMS = re.compile(
    r"(?i)([?&](?:[^=&]*(?:token|key|secret|password|signature|sig)[^=&]*)=)[^&#]*"
)


def redact_url(url: str) -> str:
    """The URL without credentials: userinfo and secret-looking query values become ***."""
    return SECRET_PARAMS.sub(r"\1***", masking.redact_url(str(url)))


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(when.timestamp() - time.time(), 0.0)


class HttpResource(dg.ConfigurableResource):
    """A REST API: base URL, auth (bearer, token, basic) and retry policy."""

    name: str = Field(default="http", description="the connection's name, used in errors")
    base_url: str | None = None
    auth: str | None = Field(default=None, description="bearer | token | basic | header")
    token: str | None = Field(default=None, description="never logged")
    header: str = Field(default="Authorization", description="header for token auth")
    username: str | None = None
    password: str | None = Field(default=None, description="never logged")
    retries: int = Field(default=5, ge=0)
    backoff_seconds: float = Field(default=0.5, ge=0)
    max_wait_seconds: float = Field(default=60, gt=0, description="cap on a Retry-After wait")
    timeout_seconds: float = Field(default=30, gt=0)

    @classmethod
    def from_connection(cls, conn: Any) -> HttpResource:
        """From an `etl_assets.connections.ResolvedConnection` of type rest."""
        s = conn.settings
        fields = ("auth", "token", "header", "username", "password", "retries", "timeout_seconds")
        kw = {k: s[k] for k in fields if s.get(k) is not None}
        if "auth" not in kw and "token" in kw:
            kw["auth"] = "bearer"
        if "auth" not in kw and "password" in kw:
            kw["auth"] = "basic"
        return cls(name=conn.name, base_url=conn.url or s.get("base_url"), **kw)

    def session(self):
        s = requests.Session()
        if self.auth == "bearer":
            s.headers[self.header] = f"Bearer {self.token}"
        elif self.auth == "token":
            s.headers[self.header] = f"Token {self.token}"
        elif self.auth == "header":
            s.headers[self.header] = str(self.token)
        elif self.auth == "basic":
            s.auth = (self.username or "", self.password or "")
        elif self.auth is not None:
            raise HttpError(
                f"connection {self.name!r}: auth {self.auth!r} is not one of"
                " bearer, token, header, basic"
            )
        return s

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")) or not self.base_url:
            return path
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def get(self, session: Any, url: str, params: dict[str, Any] | None = None) -> Any:
        """GET with retries: connection errors and 429/5xx, waiting Retry-After when given."""
        attempt = 0
        while True:
            try:
                resp = session.get(url, params=params, timeout=self.timeout_seconds)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.retries:
                    raise HttpError(
                        f"connection {self.name!r}: GET {redact_url(url)} failed after"
                        f" {attempt + 1} attempts: {type(exc).__name__}",
                        retryable=True,
                    ) from None
                wait = None
            else:
                if resp.status_code not in RETRY_STATUS:
                    if resp.status_code >= 400:
                        raise HttpError(
                            f"connection {self.name!r}: GET {redact_url(resp.url)} answered"
                            f" {resp.status_code} {resp.reason}"
                            + (" (check the connection's credentials)"
                               if resp.status_code in (401, 403) else "")
                        )  # fmt: skip
                    return resp
                if attempt >= self.retries:
                    raise HttpError(
                        f"connection {self.name!r}: GET {redact_url(resp.url)} still answered"
                        f" {resp.status_code} after {attempt + 1} attempts",
                        retryable=True,
                    )
                wait = retry_after_seconds(resp.headers.get("Retry-After"))
            if wait is None:
                wait = self.backoff_seconds * (2**attempt) * random.uniform(0.5, 1.5)
            time.sleep(min(wait, self.max_wait_seconds))
            attempt += 1
