"""Typing and strict schema: values coerced to declared types, failures quarantined with a reason."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_assets.clean import coerce
from etl_assets.clean.coerce import enforce_schema
from etl_assets.metadata import Column, Table

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
    assert r.data["s"].tolist() == ["a", " "]  # a string column keeps blank text
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


def test_columns_typed_side_by_side_give_what_one_after_the_other_gives(monkeypatch):
    """A large batch's columns are typed on several threads: the records, the quarantine (in
    column order) and the counts are those of typing them in turn; an error in one column's
    typing is raised as it would be."""
    n = 600
    df = frame(
        id=[str(i) if i % 7 else "x" for i in range(n)],
        w=["heavy" if i % 11 == 0 else f"{i / 3}" for i in range(n)],
        ok=["maybe" if i % 13 == 0 else "yes" for i in range(n)],
        d=["2020-13-01" if i % 17 == 0 else "2020-01-02" for i in range(n)],
        ts=["later" if i % 19 == 0 else "2020-01-02 03:04:05" for i in range(n)],
        s=[f"s{i}" for i in range(n)],
    ).astype(pd.ArrowDtype(pa.string()))
    monkeypatch.setattr(coerce, "PARALLEL_ROWS", 10**9)
    serial = enforce_schema(df, TABLE, "1.0.0")
    monkeypatch.setattr(coerce, "PARALLEL_ROWS", 0)
    parallel = enforce_schema(df, TABLE, "1.0.0")
    pd.testing.assert_frame_equal(parallel.data, serial.data)
    pd.testing.assert_frame_equal(parallel.quarantine, serial.quarantine)
    assert parallel.counts == serial.counts and 0 < len(serial.data) < n
    real = coerce.coerce_column

    def broken(s, column):
        if column.name == "d":
            raise RuntimeError("typing failed")
        return real(s, column)

    monkeypatch.setattr(coerce, "coerce_column", broken)
    with pytest.raises(RuntimeError, match="typing failed"):
        enforce_schema(df, TABLE, "1.0.0")


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


def test_a_string_column_keeps_blank_text_whatever_form_the_reader_gave():
    """Readers hand over text as Python objects or as Arrow strings (the file and SQL readers);
    a `string` column keeps blank text in both (the `empty` rules decide about it), so
    `nullable: false` alone rejects only nulls; other columns read blank text as null."""
    table = Table.model_validate(
        {
            "name": "t",
            "columns": [
                {"name": "a", "dataType": "string", "nullable": False},
                {"name": "n", "dataType": "integer"},
            ],
        }
    )
    values = {"a": ["x", "", "  ", None], "n": [" ", "", "\t7 ", "8"]}
    for form in (object, pd.ArrowDtype(pa.string())):
        df = pd.DataFrame({k: pd.Series(v, dtype=form) for k, v in values.items()})
        r = enforce_schema(df, table, "1.0.0")
        assert r.data["a"].tolist() == ["x", "", "  "], form
        assert r.counts["rejected_null_a"] == 1, form
        assert r.data["n"].isna().tolist() == [True, True, False], form
        assert r.data["n"][2] == 7, form


_PIECES = st.sampled_from(
    ["0", "1", "7", "9", "12", "-", "+", ".", "e", "E", "x", " ", "\t", "\u00a0", ":", "T",
     "Z", "inf", "nan", "2020", "-01", "-12", "-31", "-02-30", "0001", "9999", "03:04:05",
     "+02:00", "1e999", "000000000000000000"]
)  # fmt: skip
_TEXT = st.one_of(
    st.lists(_PIECES, max_size=6).map("".join),
    st.dates(min_value=dt.date(1, 1, 1)).map(str),
    st.datetimes(min_value=dt.datetime(1, 1, 1)).map(lambda v: v.isoformat(sep=" ")),
    st.integers(min_value=-(2**60), max_value=2**60).map(str),
    st.integers(min_value=2**52, max_value=10**18).map(str),
    st.sampled_from(["1e999", "-1e999", "inf", "0x10", " 5", "5.0", "+5", "9999-12-31", "1.8e308"]),
    st.floats(allow_nan=False).map(repr),
    st.none(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["integer", "number", "date", "datetime", "boolean", "string"]),
    values=st.lists(_TEXT, min_size=1, max_size=12),
    arrow_form=st.booleans(),
)
def test_arrow_casts_type_text_exactly_as_the_general_parsers(kind, values, arrow_form):
    """The Arrow casts that decide most columns accept the same texts, with the same values, as
    the general parsers that decide the rest (compared by turning the casts off)."""
    column = Column.model_validate({"name": "c", "dataType": kind})
    s = pd.Series(values, dtype=pd.ArrowDtype(pa.string()) if arrow_form else object)
    fast, fast_bad = coerce.coerce_column(s, column)
    original = coerce._fast_parse
    coerce._fast_parse = lambda *a: None
    try:
        ref, ref_bad = coerce.coerce_column(s, column)
    finally:
        coerce._fast_parse = original
    assert fast_bad.tolist() == ref_bad.tolist()
    assert fast.dtype == ref.dtype
    assert fast.isna().tolist() == ref.isna().tolist()
    if kind == "number":  # the casts round correctly; pandas, deciding texts such as 1e-132
        # for the general parser, can be one unit in the last place off
        assert [f"{v:.14g}" for v in fast.dropna()] == [f"{v:.14g}" for v in ref.dropna()]
    else:
        assert [repr(v) for v in fast.dropna()] == [repr(v) for v in ref.dropna()]
