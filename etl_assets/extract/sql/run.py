"""Run one read in the reader process (`reader.py`) and take its Arrow result back.

The reader gets a minimal environment and no stderr: a Rust panic inside connectorx prints the
value it failed on, and that text must reach neither the step's log nor Dagster's captured
output. A crash (out of memory, a signal) ends only that process; the step then fails with the
exit code and may be retried. Batches stream from the server into an IPC file, so the reader's
memory is bounded by `batch_rows`; the step maps the file and keeps the table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from etl_assets.errors import ExtractionError
from etl_assets.extract.sql.messages import reader_message, restricted_detail, scrub

READER = Path(__file__).with_name("reader.py")
BATCH_ROWS = 65_536
# the reader needs no variable of the step's environment (and must not see its secrets)
READER_ENV = {"RUST_BACKTRACE": "0", "RUST_LOG": "off", "LC_ALL": "C.UTF-8"}
HEX = np.array([list(f"{i:02x}".encode()) for i in range(256)], dtype=np.uint8)


def read_arrow(
    url: str,
    statement: str,
    pre_execution: tuple[str, ...],
    where: str,
    *,
    secrets: tuple[str, ...] = (),
    database: str = "",
    scratch: Path | None = None,
) -> pa.Table:
    """`statement`'s rows as an Arrow table, read by connectorx in a process of its own."""
    with tempfile.TemporaryDirectory(prefix="dm_sql_", dir=scratch) as tmp:
        out = Path(tmp) / "result.arrow"
        request = {
            "url": url,
            "query": statement,
            "pre": list(pre_execution),
            "out": str(out),
            "batch_rows": BATCH_ROWS,
        }
        proc = subprocess.run(
            [sys.executable, "-I", str(READER)],
            input=json.dumps(request),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=READER_ENV,
            text=True,
            check=False,
        )
        answer = _answer(proc.stdout)
        if answer is None:
            raise ExtractionError(
                f"{where}: the reader process ended without a result (exit {proc.returncode})",
                retryable=True,
            )
        if "error" in answer:
            raw = answer.get("message", "")
            text = scrub(reader_message(answer["error"], raw, statement, database), *secrets)
            raise ExtractionError(
                f"{where}: reading the result failed: {text}",
                restricted_detail=restricted_detail(raw, text, *secrets),
            )
        with pa.memory_map(str(out)) as source:
            table = pa.ipc.open_file(source).read_all()
    return readable(table)


def _answer(stdout: str) -> dict | None:
    lines = stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


def readable(table: pa.Table) -> pa.Table:
    """Binary columns (MySQL BLOB/BINARY, SQL Server VARBINARY) as lower-case hexadecimal text,
    so that the clean step sees text it can type instead of bytes."""
    for i, field in enumerate(table.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            chunks = [hex_text(c) for c in table.column(i).chunks]
            column = pa.chunked_array(chunks, type=pa.large_string())
            table = table.set_column(i, pa.field(field.name, pa.large_string()), column)
    return table


def hex_text(chunk: pa.Array) -> pa.Array:
    """Each binary value as hexadecimal text, vectorized (two digits per byte)."""
    arr = chunk.cast(pa.large_binary())
    validity, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    )
    digits = HEX[data[offsets[0] : offsets[-1]]].reshape(-1)
    new_offsets = (offsets - offsets[0]) * 2
    if validity is not None and arr.offset:
        validity = pa.array(arr.is_valid()).buffers()[1]
    return pa.Array.from_buffers(
        pa.large_string(),
        len(arr),
        [validity, pa.py_buffer(new_offsets), pa.py_buffer(digits.tobytes())],
        null_count=arr.null_count,
    )
