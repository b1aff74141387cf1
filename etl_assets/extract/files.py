"""The file connector: CSV, TXT (delimited), JSON, JSON Lines and Parquet, one path or a glob."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from etl_assets.errors import ExtractionError
from etl_assets.extract.records import parse_json_records, records_to_frame
from etl_assets.metadata import CollectionEntry, FileConnector

FORMATS = {".csv": "csv", ".txt": "txt", ".tsv": "csv", ".json": "json", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}  # fmt: skip


def resolve_paths(pattern: str, folder: Path) -> list[Path]:
    base = Path(pattern) if Path(pattern).is_absolute() else folder / pattern
    if any(ch in pattern for ch in "*?["):
        return [Path(p) for p in sorted(glob.glob(str(base), recursive=True)) if Path(p).is_file()]
    return [base]


def file_format(path: Path, declared: str | None) -> str:
    if declared:
        return declared
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ExtractionError(
            f"{path}: cannot tell the format from the extension {path.suffix!r};"
            f" set extract.format to one of csv, txt, json, jsonl, parquet"
        )
    return fmt


def read_file(
    path: Path, connector: FileConnector | None = None, fmt: str | None = None
) -> pd.DataFrame:
    """Read one file into a DataFrame; text formats keep every value as text for typing later."""
    connector = connector or FileConnector(path=str(path))
    fmt = file_format(path, fmt or connector.format)
    if not path.is_file():
        raise ExtractionError(f"{path}: file not found")
    try:
        if fmt in ("csv", "txt"):
            return pd.read_csv(
                path,
                sep=connector.delimiter if fmt == "csv" or connector.delimiter != "," else ",",
                dtype=str,
                keep_default_na=False,
                header=0 if connector.header else None,
                names=connector.columns,
                encoding=connector.encoding,
            ).astype(pd.ArrowDtype(pa.string()))
        if fmt == "parquet":
            return pq.read_table(path).to_pandas(types_mapper=pd.ArrowDtype)
        text = path.read_text(connector.encoding)
        return records_to_frame(parse_json_records(text, str(path), connector.recordsPath))
    except ExtractionError:
        raise
    except (UnicodeDecodeError, pd.errors.ParserError, pa.ArrowException, ValueError) as exc:
        raise ExtractionError(f"{path}: cannot read as {fmt}: {exc}") from exc


def extract_files(connector: FileConnector, folder: Path) -> pd.DataFrame:
    """Every file matching the connector's path, concatenated (columns unioned)."""
    paths = resolve_paths(connector.path, folder)
    if not paths:
        raise ExtractionError(f"{connector.path}: no file matches under {folder}")
    frames = [read_file(p, connector) for p in paths]
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def extract_file_entry(entry: CollectionEntry, folder: Path, context: Any = None) -> pd.DataFrame:
    """The file connector of a collection entry."""
    return extract_files(entry.extract, folder)
