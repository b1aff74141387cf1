"""CSV files are read in small blocks (bounded memory) and regrouped into batches of the
configured size; a row longer than a block restarts the read with larger blocks without losing
or repeating a row, a ragged row or the order."""

from __future__ import annotations

import pyarrow as pa

from etl_assets.extract import files
from etl_assets.extract.entry import extract_entry_batches, rebatched
from etl_assets.metadata import CollectionEntry
from etl_assets.quarantine import RAW_COLUMN


def _entry() -> CollectionEntry:
    return CollectionEntry.model_validate(
        {"table": "t", "source": "csv", "extract": {"type": "file", "path": "t.csv"}}
    )


def _write(tmp_path, long_cell: int) -> list[str]:
    lines = ["id,text"]
    for i in range(3000):
        text = "x" * long_cell if i == 2000 else f"row {i}"
        lines.append(f"{i},{text}" + (",ragged" if i in (10, 2500) else ""))
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    return lines


def _read(tmp_path, monkeypatch, block: int) -> pa.Table:
    monkeypatch.setattr(files, "CSV_BLOCK", block)
    batches = list(extract_entry_batches(_entry(), tmp_path, batch_rows=700))
    return pa.concat_tables(
        [b if isinstance(b, pa.Table) else pa.Table.from_batches([b]) for b in batches],
        promote_options="default",
    )


def test_a_row_longer_than_a_block_restarts_without_losing_or_repeating(tmp_path, monkeypatch):
    _write(tmp_path, long_cell=50_000)
    small = _read(tmp_path, monkeypatch, 4096)  # the long row straddles blocks mid-file
    big = _read(tmp_path, monkeypatch, 16 << 20)
    assert small.equals(big)
    rows = small.filter(small.column(RAW_COLUMN).is_null())
    assert rows.column("id").to_pylist() == [str(i) for i in range(3000) if i not in (10, 2500)]
    raw = small.column(RAW_COLUMN).drop_null().to_pylist()
    assert raw == ["10,row 10,ragged", "2500,row 2500,ragged"]


def test_batches_are_regrouped_to_the_batch_size(tmp_path, monkeypatch):
    _write(tmp_path, long_cell=10)
    monkeypatch.setattr(files, "CSV_BLOCK", 2048)  # ~150 rows per reader block
    sizes = [b.num_rows for b in extract_entry_batches(_entry(), tmp_path, batch_rows=700)]
    assert sizes[:-2] == [700] * len(sizes[:-2]) and sum(sizes) == 3000
    assert sizes[-1] == 2  # the ragged rows: their own batch, other columns


def test_rebatched_cuts_joins_and_starts_anew_when_columns_change():
    a = pa.table({"x": list(range(5))})
    b = pa.table({"x": list(range(5, 12))})
    c = pa.table({"y": ["p", "q"]})
    out = list(rebatched(iter([a, b, c]), 4))
    assert [t.num_rows for t in out] == [4, 4, 4, 2]
    assert pa.concat_tables(out[:3]).column("x").to_pylist() == list(range(12))
    assert out[3].column_names == ["y"]
