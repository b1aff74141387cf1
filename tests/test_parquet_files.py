"""The Parquet files we write (published tables, the quarantine, the S3 sink): a dictionary
for the columns that repeat, none for keys and pseudonyms, and the data read back unchanged."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from resources.stores import dictionary_columns, write_batches, write_table


def _table(n: int = 4_000) -> pa.Table:
    rng = np.random.default_rng(3)
    return pa.table(
        {
            "id": pa.array(np.arange(n)),
            "token": pa.array([f"t{v:012x}" for v in rng.integers(0, 2**48, n)]),
            "status": pa.array(rng.choice(["new", "paid", "sent"], n)),
            "amount": pa.array(rng.integers(0, 50, n).astype(float)),
            "when": pa.array(rng.integers(0, 30, n).astype("datetime64[D]")),
            "flag": pa.array(rng.random(n) < 0.5),
            "tags": pa.array([["a", "b"][: i % 3] for i in range(n)]),
            "empty": pa.nulls(n),
        }
    )


def _dictionary_encoded(buf: io.BytesIO) -> dict[str, bool]:
    meta = pq.ParquetFile(io.BytesIO(buf.getvalue())).metadata
    group = meta.row_group(0)
    return {
        group.column(i).path_in_schema: any("DICTIONARY" in e for e in group.column(i).encodings)
        for i in range(group.num_columns)
    }


def test_repeating_columns_get_a_dictionary_and_unique_ones_do_not():
    table = _table()
    assert dictionary_columns(table) == ["status", "amount", "when"]
    for write in (
        lambda buf: write_table(buf, table),
        lambda buf: write_batches(buf, table.schema, table.to_batches(max_chunksize=1_000)),
    ):
        buf = io.BytesIO()
        write(buf)
        encoded = _dictionary_encoded(buf)
        assert encoded["status"] and encoded["amount"] and encoded["when"]
        assert not encoded["id"] and not encoded["token"]
        assert pq.read_table(io.BytesIO(buf.getvalue())).equals(table)


def test_the_choice_is_made_on_the_first_batch_and_no_batch_is_an_empty_file():
    table = _table()
    # the first batch is all one id: the column is judged repeating for the whole file
    first = pa.table({"id": pa.array([7] * 10, pa.int64())})
    rest = pa.table({"id": pa.array(np.arange(1_000))})
    buf = io.BytesIO()
    assert write_batches(buf, first.schema, [*first.to_batches(), *rest.to_batches()]) == 1_010
    ids = pq.read_table(io.BytesIO(buf.getvalue())).column("id").to_pylist()
    assert ids == [7] * 10 + list(range(1_000))
    assert _dictionary_encoded(buf)["id"]
    empty = io.BytesIO()
    assert write_batches(empty, table.schema, []) == 0
    back = pq.read_table(io.BytesIO(empty.getvalue()))
    assert back.num_rows == 0 and back.schema.names == table.schema.names
