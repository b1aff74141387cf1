"""The quarantine's `record` text built column by column in Arrow is exactly pandas' `to_json`
text (what `etl_assets.quarantine` writes), for every column type and awkward value."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_assets.clean.rules.record_text import records_json
from etl_assets.quarantine import _records_json


def frame(columns: dict[str, pa.Array], index=None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            name: pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array([values])), index=index)
            for name, values in columns.items()
        }
    )


def same(rows: pd.DataFrame) -> None:
    expected = _records_json(rows)
    got = records_json(rows)
    assert got.tolist() == expected.tolist()
    assert got.index.equals(expected.index)


def test_every_type_and_awkward_values():
    ts = [
        dt.datetime(2023, 1, 1, 1, 2, 3, 456789),
        None,
        dt.datetime(1960, 1, 1, 0, 0, 0, 999),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
        dt.datetime(2000, 2, 29),
        dt.datetime(1700, 1, 1, 12),
        dt.datetime(2261, 12, 31, 23, 59, 59, 1000),
    ]
    n = len(ts)
    same(
        frame(
            {
                "id": pa.array([1, None, -5, 2**63 - 1, 0, 7, 8], pa.int64()),
                "u": pa.array([1, None, 2**64 - 1, 0, 1, 2, 3], pa.uint64()),
                "small": pa.array([1, 2, None, -128, 127, 0, 0], pa.int8()),
                "flag": pa.array([True, False, None, True, True, False, None]),
                "at": pa.array(ts, pa.timestamp("us")),
                "at_ns": pa.array(ts, pa.timestamp("us")).cast(pa.timestamp("ns")),
                "at_s": pa.array([dt.datetime(2020, 1, 1, 5)] * n, pa.timestamp("s")),
                "at_ms": pa.array(ts, pa.timestamp("us")).cast(pa.timestamp("ms"), safe=False),
                "zoned": pa.array(ts, pa.timestamp("us")).cast(pa.timestamp("us", "Europe/Berlin")),
                "day": pa.array(
                    [dt.date(2020, 1, 2), None, dt.date(1678, 1, 1), dt.date(2261, 12, 31)]
                    + [dt.date(1, 1, 1), dt.date(1600, 5, 5), dt.date(9999, 1, 1)],
                    pa.date32(),
                ),
                "x": pa.array([1.5, None, float("nan"), 1e20, 1e-7, 0.1 + 0.2, -0.0]),
                "plain": pa.array(["a", "", None, "  ", "x y", "~", "\x7f"]),
                "escaped": pa.array(["a/b", 'q"x', "back\\s", "/", '"', "\\", None]),
                "unicode": pa.array(["é", "😀", "tab\t", "nl\n", "\x01", None, "ok"]),
                "big": pa.array(["a", None, "b/c", "", "d", "e", "f"], pa.large_string()),
                "_dm_source": pa.array(["s"] * n),
                'a/b"é': pa.array(range(n), pa.int32()),
            },
            index=pd.Index([10, 3, 4, 5, 6, 7, 8]),
        )
    )


def test_dates_outside_the_fast_range_and_numpy_columns():
    rows = frame({"day": pa.array([dt.date(1, 1, 1), None], pa.date32())})
    rows["n"] = pd.Series([1.25, 2.0])
    rows["o"] = pd.Series(["a/é", None], dtype=object)
    same(rows)
    same(frame({"at": pa.array([dt.datetime(1500, 1, 1), None], pa.timestamp("us"))}))


def test_empty_and_only_bookkeeping_columns():
    same(frame({"a": pa.array([], pa.int64())}))
    same(frame({"_dm_source": pa.array(["x"])}).iloc[:0])


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.none() | st.integers(-(2**63), 2**63 - 1),
            st.none() | st.floats(allow_nan=True, allow_infinity=True),
            st.none() | text | st.sampled_from(["a/b", '"', "\\", " "]),
            st.none() | st.datetimes(dt.datetime(1678, 1, 1), dt.datetime(2261, 12, 31)),
            st.none() | st.dates(dt.date(1678, 1, 1), dt.date(2261, 12, 31)),
            st.none() | st.booleans(),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_random_records_match_pandas(records):
    columns = list(zip(*records, strict=True))
    types = [pa.int64(), pa.float64(), pa.string(), pa.timestamp("us"), pa.date32(), pa.bool_()]
    same(
        frame(
            {
                name: pa.array(list(values), t)
                for name, values, t in zip("ixsadb", columns, types, strict=True)
            }
        )
    )
