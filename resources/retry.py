"""Connection-level retries with exponential backoff and jitter (separate from step retries)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

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
