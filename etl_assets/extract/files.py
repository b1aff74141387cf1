"""The file connector: CSV, TXT (delimited), JSON, JSON Lines and Parquet, one path or a glob.

Files are read with Arrow's own readers, in record batches (CSV and JSON Lines stream; a JSON
document is parsed whole). Text formats keep every value as text (the clean stage types them),
with empty fields as empty text. A CSV row with too few or too many fields is never padded: by
default it becomes a record that the clean stage quarantines as `ragged_row` (its raw text kept
in the restricted quarantine); with `raggedRows: fail` the step fails naming the file and line.
A byte that is not valid in the file's `encoding` fails the step naming the file, the line and
the byte offset — never the text around it.
"""

from __future__ import annotations

import codecs
import csv
import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from etl_assets.errors import ExtractionError
from etl_assets.extract.records import parse_json_records, records_to_frame
from etl_assets.metadata import CollectionEntry, FileConnector
from etl_assets.quarantine import RAW_COLUMN
from resources.stores import parquet_reader

FORMATS = {".csv": "csv", ".txt": "txt", ".tsv": "csv", ".json": "json", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}  # fmt: skip
BLOCK = 16 << 20  # bytes per JSON block: bounds the reader's memory
CSV_BLOCK = 1 << 20  # bytes per CSV block (1M orders rows: ~60 MB held, against ~670 at 16 MB)
MAX_BLOCK = 1 << 30


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


def decoding_error(path: Path, encoding: str) -> ExtractionError | None:
    """Where the first byte that is not valid `encoding` is: file, line and byte offset."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, lines = 0, 1
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = offset + exc.start
                line = lines + chunk[: exc.start].count(b"\n")
                return ExtractionError(
                    f"{path}: line {line}, byte {at}: not valid {encoding} ({exc.reason});"
                    " set extract.encoding to the file's encoding (e.g. latin-1, cp1252)"
                )
            offset += len(chunk)
            lines += chunk.count(b"\n")
    return None


def _ragged_lines(path: Path, connector: FileConnector, expected: int) -> list[int]:
    """Physical line numbers of the rows with a wrong number of fields (only read when a
    ragged row was seen: Arrow's streaming reader does not know line numbers)."""
    with open(path, newline="", encoding=connector.encoding, errors="replace") as fh:
        reader = csv.reader(fh, delimiter=connector.delimiter)
        if connector.header:
            next(reader, None)
        found = []
        start = reader.line_num + 1
        for row in reader:
            if row and len(row) != expected:
                found.append(start)
            start = reader.line_num + 1
        return found


def _csv_batches(path: Path, connector: FileConnector) -> Iterator[pa.RecordBatch]:
    """The file's rows as text batches. Blocks are small (the reader holds ~50 of them ahead,
    so memory is ~50 x the block); a row longer than a block restarts the read with 16x
    larger blocks, skipping the rows already given, so no row is lost or given twice."""
    ragged: list[str] = []
    given, block = 0, CSV_BLOCK
    while True:
        try:
            for batch in _csv_pass(path, connector, block, skip=given, ragged=ragged):
                given += len(batch)
                yield batch
            break
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc) or block >= MAX_BLOCK:
                raise
            block *= 16
    names = _csv_names(path, connector, block)
    if ragged and connector.raggedRows == "fail":
        lines = _ragged_lines(path, connector, len(names))
        shown = ", ".join(map(str, lines[:10])) + (" …" if len(lines) > 10 else "")
        raise ExtractionError(
            f"{path}: {len(ragged)} rows do not have {len(names)} fields (lines {shown});"
            " fix the file, or set extract.raggedRows: quarantine"
        )
    if ragged:  # records of their own: the clean stage quarantines them as ragged_row
        empty = [pa.nulls(len(ragged), pa.string())] * len(names)
        yield pa.RecordBatch.from_arrays(
            [*empty, pa.array(ragged, pa.string())], [*names, RAW_COLUMN]
        )


def _read_options(connector: FileConnector, block: int) -> pacsv.ReadOptions:
    return pacsv.ReadOptions(
        block_size=block,
        encoding=connector.encoding,
        column_names=None if connector.header else connector.columns,
        autogenerate_column_names=not connector.header and not connector.columns,
    )


def _csv_names(path: Path, connector: FileConnector, block: int) -> list[str]:
    parse = pacsv.ParseOptions(delimiter=connector.delimiter, invalid_row_handler=lambda r: "skip")
    return pacsv.open_csv(
        path, read_options=_read_options(connector, block), parse_options=parse
    ).schema.names


def _csv_pass(
    path: Path, connector: FileConnector, block: int, skip: int, ragged: list[str]
) -> Iterator[pa.RecordBatch]:
    """One read of the file, from its start: the first `skip` rows and the ragged rows already
    in `ragged` (an earlier pass gave them) are passed over; new ragged rows are appended."""
    known, seen = len(ragged), 0

    def on_invalid(row: Any) -> str:
        nonlocal seen
        seen += 1
        if seen > known:
            ragged.append(row.text)
        return "skip"

    names = _csv_names(path, connector, block)
    parse = pacsv.ParseOptions(delimiter=connector.delimiter, invalid_row_handler=on_invalid)
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    reader = pacsv.open_csv(
        path,
        read_options=_read_options(connector, block),
        parse_options=parse,
        convert_options=convert,
    )
    for batch in reader:
        if skip >= len(batch):
            skip -= len(batch)
            continue
        if skip:
            batch, skip = batch.slice(skip), 0
        if len(batch):
            yield batch


def _jsonl_batches(path: Path, connector: FileConnector) -> Iterator[pa.RecordBatch]:
    if connector.encoding.replace("-", "").lower() != "utf8":
        text = path.read_bytes().decode(connector.encoding)
        yield from pa.Table.from_pandas(
            records_to_frame(parse_json_records(text, str(path))), preserve_index=False
        ).to_batches()
        return
    try:
        reader = pajson.open_json(path, read_options=pajson.ReadOptions(block_size=BLOCK))
        batches = list(reader)  # a mixed-type field across blocks fails here: decode generically
    except pa.ArrowInvalid:
        text = path.read_text("utf-8")
        yield from pa.Table.from_pandas(
            records_to_frame(parse_json_records(text, str(path))), preserve_index=False
        ).to_batches()
        return
    yield from (b for b in batches if len(b))


def read_batches(path: Path, connector: FileConnector, fmt: str) -> Iterator[pa.RecordBatch]:
    """One file's records as Arrow record batches."""
    if fmt in ("csv", "txt"):
        yield from _csv_batches(path, connector)
    elif fmt == "parquet":
        yield from parquet_reader(path).iter_batches(batch_size=64_000)
    elif fmt == "jsonl":
        yield from _jsonl_batches(path, connector)
    else:
        text = path.read_bytes().decode(connector.encoding)
        frame = records_to_frame(parse_json_records(text, str(path), connector.recordsPath))
        yield from pa.Table.from_pandas(frame, preserve_index=False).to_batches()


def stream_file(
    path: Path, connector: FileConnector | None = None, fmt: str | None = None
) -> Iterator[pa.RecordBatch | pa.Table]:
    """One file's records in batches (an empty file: one empty table with its columns); text
    formats keep every value as text for typing later. Read errors name the file and where."""
    connector = connector or FileConnector(path=str(path))
    fmt = file_format(path, fmt or connector.format)
    if not path.is_file():
        raise ExtractionError(f"{path}: file not found")
    seen = False
    try:
        for batch in read_batches(path, connector, fmt):
            seen = True
            yield batch
        if not seen:
            yield _empty(path, connector, fmt)
    except ExtractionError:
        raise
    except (UnicodeDecodeError, pa.ArrowInvalid) as exc:
        located = decoding_error(path, connector.encoding)
        if located is not None:
            raise located from None
        # Arrow's and the decoders' messages can quote the row: say only what and where
        raise ExtractionError(f"{path}: cannot read as {fmt} ({type(exc).__name__})") from None


def read_file(
    path: Path, connector: FileConnector | None = None, fmt: str | None = None
) -> pd.DataFrame:
    """Read one file into a DataFrame; text formats keep every value as text for typing later."""
    parts = [
        b if isinstance(b, pa.Table) else pa.Table.from_batches([b])
        for b in stream_file(path, connector, fmt)
    ]
    table = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="default")
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _empty(path: Path, connector: FileConnector, fmt: str) -> pa.Table:
    """A file without records: its header's columns (CSV), else no columns."""
    if fmt in ("csv", "txt") and connector.header:
        with open(path, newline="", encoding=connector.encoding) as fh:
            header = next(csv.reader(fh, delimiter=connector.delimiter), [])
        return pa.table({name: pa.array([], pa.string()) for name in header})
    if fmt in ("csv", "txt") and connector.columns:
        return pa.table({name: pa.array([], pa.string()) for name in connector.columns})
    if fmt == "parquet":
        return pq.read_schema(path).empty_table()
    return pa.table({})


def _paths(connector: FileConnector, folder: Path) -> list[Path]:
    paths = resolve_paths(connector.path, folder)
    if not paths:
        raise ExtractionError(f"{connector.path}: no file matches under {folder}")
    return paths


def extract_files(connector: FileConnector, folder: Path) -> pd.DataFrame:
    """Every file matching the connector's path, concatenated (columns unioned)."""
    frames = [read_file(p, connector) for p in _paths(connector, folder)]
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def extract_file_entry(entry: CollectionEntry, folder: Path, context: Any = None) -> pd.DataFrame:
    """The file connector of a collection entry."""
    return extract_files(entry.extract, folder)


def stream_file_entry(
    entry: CollectionEntry, folder: Path, context: Any = None
) -> Iterator[pa.RecordBatch | pa.Table]:
    """The file connector of a collection entry, in batches, file after file (the staged table
    unions their columns)."""
    for path in _paths(entry.extract, folder):
        yield from stream_file(path, entry.extract)
