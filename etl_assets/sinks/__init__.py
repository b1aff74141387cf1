"""Sinks: where a published version goes. PostgreSQL is built in (`sinks.postgres`); other
sinks register a function in `SINKS` under their `upload.sink.type`, and an upload script is run
by `sinks.script`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from etl_assets.errors import UploadError

# sink type -> fn(loaded, version, tables, *, outbox, postgres, run_id, log) -> PublishReport
SINKS: dict[str, Callable[..., Any]] = {}


def register(kind: str) -> Callable:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        SINKS[kind] = fn
        return fn

    return wrap


def publish_with(loaded, version: str, tables: dict[str, pd.DataFrame], **kw: Any):
    """Publish through the module's upload script or its non-PostgreSQL sink."""
    upload = loaded.model.upload
    if upload.script is not None:
        from etl_assets.sinks.script import publish_with_script

        return publish_with_script(loaded, version, tables, **kw)
    kind = upload.sink.type
    if kind not in SINKS:
        try:  # sinks that need optional packages live in their own modules
            __import__(f"etl_assets.sinks.{kind}")
        except ImportError as exc:
            raise UploadError(f"sink {kind!r} is not available: {exc}") from exc
    if kind not in SINKS:
        raise UploadError(f"sink {kind!r} is not available in this installation")
    return SINKS[kind](loaded, version, tables, **kw)
