"""The upload loads a version's quarantine into the restricted schema batch by batch from the
outbox files: the rows in PostgreSQL are the files' rows, cell for cell (NULL stays NULL, an
empty text stays empty, quotes, commas and line breaks survive), however many batches it takes."""

import pandas as pd
import psycopg
import pyarrow as pa

from etl_assets.publish import postgres as pg_publish
from etl_assets.publish.sink import QuarantineSource
from etl_assets.quarantine import QUARANTINE_COLUMNS, quarantine_file_schema
from resources.outbox import OutboxResource


def _rows(n: int, table: str) -> pd.DataFrame:
    values = ["", None, 'a "quoted", value', "line\nbreak", "ünï", "NULL", "\\N"]
    return pd.DataFrame(
        {
            "table": [table] * n,
            "source": ["csv"] * n,
            "action": ["rejected" if i % 3 else "modified" for i in range(n)],
            "rule": ["range"] * n,
            "column": [None if i % 5 == 0 else "amount" for i in range(n)],
            "reason": ["below_min"] * n,
            "value": [values[i % len(values)] for i in range(n)],
            "record": [f'{{"id": {i}, "note": "x,\\"y\\""}}' for i in range(n)],
            "version": ["1.0.0"] * n,
        },
        dtype="string",
    )


def test_the_quarantine_is_loaded_cell_for_cell_in_batches(tmp_path, pg_url, monkeypatch):
    outbox = OutboxResource(root=str(tmp_path / "outbox"))
    whole = _rows(23, "orders")
    outbox.write_quarantine("m", "1.0.0", "customers", _rows(4, "customers"))
    # the streamed clean stage writes batch by batch, with the file schema
    batches = [
        pa.Table.from_pandas(whole.iloc[i : i + 10], preserve_index=False) for i in (0, 10, 20)
    ]
    outbox.write_quarantine_batches(
        "m",
        "1.0.0",
        "orders",
        quarantine_file_schema(),
        (b.cast(quarantine_file_schema()) for b in batches),
    )
    source = QuarantineSource(outbox, "m", "1.0.0")
    assert len(source) == 27
    original = source.batches
    monkeypatch.setattr(source, "batches", lambda: original(batch_rows=4))  # several batches a file

    cols = ", ".join("record::text" if c == "record" else f'"{c}"' for c in QUARANTINE_COLUMNS)
    with psycopg.connect(pg_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA dm_m__restricted")
        pg_publish._load_quarantine(cur, "dm_m", "1.0.0", source)
        cur.execute(f"SELECT {cols} FROM dm_m__restricted.quarantine")
        loaded = cur.fetchall()
        expected = pd.concat(
            [outbox.read_quarantine_table("m", "1.0.0", t) for t in ("customers", "orders")]
        )
        want = []
        for row in expected[QUARANTINE_COLUMNS].itertuples(index=False):
            row = [None if pd.isna(v) else v for v in row]
            # jsonb normalizes the record's spacing: compare it as PostgreSQL reads the text
            row[7] = cur.execute("SELECT %s::jsonb::text", (row[7],)).fetchone()[0]
            want.append(tuple(row))

    def key(row):
        return tuple((v is not None, v or "") for v in row)

    assert sorted(loaded, key=key) == sorted(want, key=key)
    assert sum(r[6] is None for r in loaded) == int(expected["value"].isna().sum()) > 0
    assert sum(r[6] == "" for r in loaded) == int((expected["value"] == "").sum()) > 0
