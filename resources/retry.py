"""Connection-level retries with exponential backoff and jitter (separate from step retries)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from confluent_kafka import KafkaException

from resources.http import HttpError

T = TypeVar("T")


class ConnectionFailed(RuntimeError):
    """A connection could not be established after every retry; names the connection only."""


def with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    retries: int,
    backoff_seconds: float,
    retry_on: tuple[type[BaseException], ...],
    scrub: Callable[[str], str] = lambda s: s,
) -> T:
    """Call `fn`, retrying `retry_on` errors with delays backoff * 2**attempt (±50% jitter)."""
    attempt = 0
    while True:
        try:
            return fn()
        except retry_on as exc:
            if attempt >= retries:
                raise ConnectionFailed(
                    f"cannot connect to {what} after {attempt + 1} attempts:"
                    f" {scrub(str(exc)).strip() or type(exc).__name__}"
                ) from None
            time.sleep(backoff_seconds * (2**attempt) * random.uniform(0.5, 1.5))
            attempt += 1


# --- which errors can heal -------------------------------------------------------------------

# SQLSTATE classes of PostgreSQL errors that retrying cannot fix although psycopg raises them as
# OperationalError: refused credentials (28), a missing database or catalog object (3D, 3F)
_PG_PERMANENT_CLASSES = ("28", "3D", "3F")
_PG_PERMANENT_TEXT = ("password authentication failed", "does not exist", "pg_hba.conf")
# S3 error codes that mean "slow down" or "the service is unwell", not "you asked wrongly"
_S3_TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "RequestLimitExceeded",
}


def is_transient(exc: BaseException) -> bool:
    """Whether trying again later may succeed: a network or server problem (a refused or reset
    connection, a timeout, PostgreSQL unreachable or shutting down, S3 throttling or 5xx, a
    retriable Kafka error, HTTP 429/5xx), not bad input, a refused login or a missing object."""
    if isinstance(exc, ConnectionFailed):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = getattr(exc, "sqlstate", None) or ""
        text = str(exc)
        return not state.startswith(_PG_PERMANENT_CLASSES) and not any(
            t in text for t in _PG_PERMANENT_TEXT
        )
    if isinstance(exc, psycopg.errors.AdminShutdown | psycopg.errors.CannotConnectNow):
        return True
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error.get("Code") in _S3_TRANSIENT_CODES or int(status) >= 500
    if isinstance(exc, KafkaException):
        err = exc.args[0] if exc.args else None
        return bool(getattr(err, "retriable", lambda: False)())
    if isinstance(exc, HttpError):
        return exc.retryable
    return isinstance(exc, ConnectionError | TimeoutError)
