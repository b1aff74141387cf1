"""The S3 connector: objects under a prefix matching a pattern (Parquet, CSV, JSON, JSON Lines)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from etl_assets.errors import ExtractionError
from etl_assets.extract.files import file_format, read_file
from etl_assets.metadata import CollectionEntry, FileConnector, S3Connector
from resources.s3 import checked_client, list_keys, s3_resource_for


def extract_s3(entry: CollectionEntry, folder: Path, context: Any) -> pd.DataFrame:
    """Every matching object, read like a local file of its format, concatenated."""
    connector: S3Connector = entry.extract
    conn = context.connection(connector.connection, "s3")
    where = f"s3://{connector.bucket}/{connector.prefix}{connector.pattern}"
    client = checked_client(s3_resource_for(conn), conn.name, connector.bucket)
    keys = list_keys(client, connector.bucket, connector.prefix, connector.pattern)
    if not keys:
        raise ExtractionError(f"{where} (connection {conn.name!r}): no object matches")
    frames = []
    with tempfile.TemporaryDirectory(prefix="dm_s3_") as tmp:
        for i, key in enumerate(keys):
            local = Path(tmp) / f"{i}_{Path(key).name}"
            client.download_file(connector.bucket, key, str(local))
            fmt = file_format(Path(key), connector.format)
            frames.append(read_file(local, FileConnector(path=key, format=fmt), fmt))
            local.unlink()
    context.log.info(f"{where}: {len(keys)} objects")
    return concat_frames(frames)


def concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate, unioning columns; a column typed differently across files becomes text."""
    if len(frames) == 1:
        return frames[0]
    dtypes: dict[str, set[str]] = {}
    for f in frames:
        for col, dtype in f.dtypes.items():
            dtypes.setdefault(col, set()).add(str(dtype))
    mixed = [c for c, kinds in dtypes.items() if len(kinds) > 1]
    text = pd.ArrowDtype(pa.string())
    if mixed:
        frames = [f.astype({c: text for c in mixed if c in f.columns}) for f in frames]
    return pd.concat(frames, ignore_index=True)
