"""Typing and strict schema: values coerced to declared types, failures quarantined with a reason."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from etl_assets.clean.coerce import enforce_schema
from etl_assets.metadata import Table

TABLE = Table.model_validate(
    {
        "name": "p",
        "columns": [
            {"name": "id", "dataType": "integer", "nullable": False},
            {"name": "w", "dataType": "number"},
            {"name": "ok", "dataType": "boolean"},
            {"name": "d", "dataType": "date"},
            {"name": "ts", "dataType": "datetime"},
            {"name": "s", "dataType": "string"},
        ],
    }
)


def frame(**cols):
    n = len(next(iter(cols.values())))
    base = {"id": ["1"] * n, "w": [""] * n, "ok": [""] * n, "d": [""] * n, "ts": [""] * n}
    base.update({"s": [""] * n, "_dm_source": ["src"] * n})
    base.update(cols)
    return pd.DataFrame(base)


def test_values_are_coerced_to_declared_types():
    df = frame(
        id=["1", "2"],
        w=["1.5", "2e3"],
        ok=["yes", "0"],
        d=["2020-01-02", ""],
        ts=["2020-01-02T03:04:05+02:00", "2020-01-02 03:04:05"],
        s=["a", " "],
    )
    r = enforce_schema(df, TABLE, "1.0.0")
    assert r.quarantine.empty
    assert r.data["id"].tolist() == [1, 2]
    assert r.data["w"].tolist() == [1.5, 2000.0]
    assert r.data["ok"].tolist() == [True, False]
    assert r.data["d"][0] == dt.date(2020, 1, 2) and pd.isna(r.data["d"][1])
    # offsets are converted to UTC; naive times are taken as UTC
    assert r.data["ts"].tolist() == [
        pd.Timestamp("2020-01-02 01:04:05"),
        pd.Timestamp("2020-01-02 03:04:05"),
    ]
    assert r.data["s"][0] == "a" and pd.isna(r.data["s"][1])
    assert str(r.data["id"].dtype) == "int64[pyarrow]"


def test_uncoercible_values_reject_their_record_once_with_the_first_reason():
    df = frame(
        id=["x", "2", "3", "4.5", ""],
        w=["1", "heavy", "2", "1", "1"],
        d=["", "", "2020-13-01", "", ""],
    )
    r = enforce_schema(df, TABLE, "1.0.0")
    assert r.data["id"].tolist() == []
    got = list(
        zip(r.quarantine["column"], r.quarantine["reason"], r.quarantine["value"], strict=True)
    )
    assert got == [
        ("id", "not_integer", "x"),
        ("id", "not_integer", "4.5"),
        ("id", "null", ""),
        ("w", "not_number", "heavy"),
        ("d", "not_date", "2020-13-01"),
    ]
    assert set(r.quarantine["rule"]) == {"type", "empty"}
    assert (r.quarantine["source"] == "src").all()
    assert r.counts["rows_in"] == 5 and r.counts["rows_typed"] == 0


def test_strict_mode_drops_undeclared_columns_and_lax_mode_keeps_them():
    df = frame(id=["1"], extra=["e"])
    assert "extra" not in enforce_schema(df, TABLE, "1").data.columns
    lax = TABLE.model_copy(update={"strict": False})
    assert enforce_schema(df, lax, "1").data["extra"].tolist() == ["e"]


def test_missing_declared_column_is_empty_and_reported():
    df = frame(id=["1"]).drop(columns=["w"])
    r = enforce_schema(df, TABLE, "1")
    assert r.missing_columns == ["w"] and r.data["w"].isna().all()


def test_json_numbers_and_text_mix():
    df = pd.DataFrame.from_records(
        [{"id": 1, "w": 2.5, "ok": True}, {"id": 2.0, "w": "3", "ok": False}]
    )
    r = enforce_schema(df, TABLE, "1")
    assert r.data["id"].tolist() == [1, 2]
    assert r.data["w"].tolist() == [2.5, 3.0]


def test_typing_a_batch_leaves_no_reference_cycles():
    """Garbage in cycles is freed only by a full collection, which the batch path never waits
    for: typing must not make any (pandas' `.str` / `.dt` accessors do), or batch after batch
    of typed columns piles up in memory."""
    import gc

    import pyarrow as pa

    df = frame(
        id=["1", "x", None],
        w=[" 1.5", "2e3", "-"],
        ok=["yes", "0", "maybe"],
        d=["2020-01-02", "", "2020-13-01"],
        ts=["2020-01-02T03:04:05+02:00", "2020-01-02 03:04:05", "later"],
        s=["a", " ", None],
    )
    df = df.astype(pd.ArrowDtype(pa.string()))  # as the file connectors hand batches over
    enforce_schema(df, TABLE, "1.0.0")  # warm-up: caches filled once are not garbage
    gc.collect()
    gc.disable()
    try:
        result = enforce_schema(df, TABLE, "1.0.0")
        assert len(result.quarantine)
        del result
        assert gc.collect() == 0
    finally:
        gc.enable()
