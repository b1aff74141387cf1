"""Extraction: one function per connector type, chosen by `extract_entry`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from etl_assets.errors import ExtractionError
from etl_assets.model import CollectionEntry
from etl_assets.quarantine import SHARD_COLUMN, SOURCE_COLUMN

# connector type -> function(entry, folder, context) -> DataFrame; connectors register here.
EXTRACTORS: dict[str, Callable[..., pd.DataFrame]] = {}
# connector type -> function(entry, folder, context) called once the version's outbox for the
# entry's table is durable (e.g. Kafka commits its offsets only then).
DURABLE_HOOKS: dict[str, Callable[..., None]] = {}


def register(kind: str) -> Callable:
    def wrap(fn: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        EXTRACTORS[kind] = fn
        return fn

    return wrap


@register("file")
def _file(entry: CollectionEntry, folder: Path, context: Any = None) -> pd.DataFrame:
    from etl_assets.extract.files import extract_files

    return extract_files(entry.extract, folder)


@register("script")
def _script(entry: CollectionEntry, folder: Path, context: Any = None) -> pd.DataFrame:
    from etl_assets.extract.script import extract_script

    env = dict(getattr(context, "script_env", None) or {})
    env.update({"DM_TABLE": entry.table, "DM_SOURCE": entry.source})
    return extract_script(entry.extract, folder, env)


def on_outbox_durable(kind: str) -> Callable:
    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        DURABLE_HOOKS[kind] = fn
        return fn

    return wrap


def _load_connector(kind: str) -> None:
    """Connectors with optional dependencies live in `etl_assets.extract.<kind>`."""
    if kind not in EXTRACTORS:
        try:
            __import__(f"etl_assets.extract.{kind}")
        except ImportError as exc:
            raise ExtractionError(f"connector type {kind!r} is not available: {exc}") from exc


def outbox_durable(entry: CollectionEntry, folder: Path, context: Any = None) -> None:
    """Tell the entry's connector that its records are durable in the outbox."""
    _load_connector(entry.extract.type)
    hook = DURABLE_HOOKS.get(entry.extract.type)
    if hook is not None:
        hook(entry, folder, context)


def extract_entry(entry: CollectionEntry, folder: Path, context: Any = None) -> pd.DataFrame:
    """Run one collection entry; the result carries the entry's source name on every record."""
    kind = entry.extract.type
    _load_connector(kind)
    fn = EXTRACTORS.get(kind)
    if fn is None:
        raise ExtractionError(
            f"connector type {kind!r} is not available in this installation"
            " (install the connectors extra)"
        )
    df = fn(entry, folder, context)
    if entry.mapping:
        df = df.rename(columns=entry.mapping)
    df = df.reset_index(drop=True)
    df[SOURCE_COLUMN] = pd.Series(entry.source, dtype=pd.ArrowDtype(pa.string()), index=df.index)
    shard = getattr(context, "shard", None)
    if shard is not None:
        df[SHARD_COLUMN] = pd.Series(shard, dtype=pd.ArrowDtype(pa.string()), index=df.index)
    return df
