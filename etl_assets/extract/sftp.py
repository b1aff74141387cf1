"""The SFTP connector: one file or a glob of files (CSV, JSON, JSON Lines, Parquet)."""

from __future__ import annotations

import fnmatch
import posixpath
import stat
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from etl_assets.errors import ExtractionError
from etl_assets.extract.files import file_format, read_file
from etl_assets.extract.s3 import concat_frames
from etl_assets.metadata import CollectionEntry, FileConnector, SftpConnector
from resources.sftp import SftpRefused, SftpResource


def remote_paths(sftp: Any, pattern: str) -> list[str]:
    """The files matching `pattern` (a glob in the last path component)."""
    if not any(ch in pattern for ch in "*?["):
        return [pattern]
    folder, name = posixpath.split(pattern)
    entries = sftp.listdir_attr(folder or ".")
    return sorted(
        posixpath.join(folder, e.filename)
        for e in entries
        if fnmatch.fnmatch(e.filename, name) and not stat.S_ISDIR(e.st_mode or 0)
    )


def extract_sftp(entry: CollectionEntry, folder: Path, context: Any) -> pd.DataFrame:
    connector: SftpConnector = entry.extract
    conn = context.connection(connector.connection, "sftp")
    resource = SftpResource.from_connection(conn)
    where = f"sftp {connector.path!r} (connection {conn.name!r})"
    frames = []
    try:
        with resource.open() as sftp, tempfile.TemporaryDirectory(prefix="dm_sftp_") as tmp:
            try:
                paths = remote_paths(sftp, connector.path)
            except FileNotFoundError:
                raise ExtractionError(f"{where}: the folder does not exist") from None
            if not paths:
                raise ExtractionError(f"{where}: no file matches")
            for i, path in enumerate(paths):
                fmt = file_format(Path(path), connector.format)
                local = Path(tmp) / f"{i}_{posixpath.basename(path)}"
                try:
                    sftp.get(path, str(local))
                except FileNotFoundError:
                    raise ExtractionError(f"{where}: {path} not found") from None
                spec = FileConnector(path=path, format=fmt, delimiter=connector.delimiter)
                frames.append(read_file(local, spec, fmt))
                local.unlink()
    except SftpRefused as exc:
        raise ExtractionError(str(exc)) from None
    context.log.info(f"{where}: {len(frames)} files")
    return concat_frames(frames)
