"""The rules engine's vectorized building blocks agree with the plain pandas/Arrow operations
they replace: chunk-wise take, repeated values, foreign-key membership, candidate narrowing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_assets.clean.rules.foreign_keys import member
from etl_assets.clean.rules.grouping import candidates, repeated
from etl_assets.clean.rules.working_set import take, take_series


def chunked(values: list, t: pa.DataType, size: int) -> pa.ChunkedArray:
    chunks = [pa.array(values[i : i + size], t) for i in range(0, len(values), size)]
    return pa.chunked_array(chunks, type=t)


ints = st.lists(st.none() | st.integers(-5, 40), max_size=60)


@settings(max_examples=80, deadline=None)
@given(ints, st.integers(1, 7), st.data())
def test_take_matches_arrow_take_in_any_order(values, size, data):
    column = chunked(values, pa.int64(), size)
    positions = np.array(
        data.draw(st.lists(st.integers(0, max(len(values) - 1, 0)), max_size=30)) if values else [],
        dtype=np.int64,
    )
    for order in (positions, np.sort(positions)):
        expected = column.combine_chunks().take(pa.array(order, pa.int64()))
        assert take(column, order).to_pylist() == expected.to_pylist()
    series = pd.Series(pd.arrays.ArrowExtensionArray(column), name="c")
    taken = take_series(series, np.sort(positions))
    assert taken.tolist() == series.iloc[np.sort(positions)].tolist()
    assert taken.dtype == series.dtype and taken.index.equals(pd.RangeIndex(len(positions)))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(-(2**40), 2**40) | st.integers(0, 30), max_size=80))
def test_repeated_matches_pandas_duplicated_for_dense_and_sparse_ranges(values):
    column = chunked(values, pa.int64(), 9)
    expected = pd.Series(values, dtype="int64").duplicated(keep=False).to_numpy()
    assert repeated(column).tolist() == expected.tolist()


@settings(max_examples=80, deadline=None)
@given(ints, ints)
def test_member_matches_is_in(child, parent):
    values, allowed = chunked(child, pa.int64(), 7), chunked(parent, pa.int64(), 5)
    found = pc.is_in(values, value_set=allowed).to_numpy(zero_copy_only=False)
    expected = [bool(f) and v is not None for f, v in zip(found, child, strict=True)]
    assert member(values, allowed).tolist() == expected  # a null references nothing


def test_member_sparse_keys_and_other_types():
    sparse = pa.chunked_array([pa.array([1, 10**15, None])])
    assert member(pa.chunked_array([pa.array([1, 2, 10**15])]), sparse).tolist() == [
        True,
        False,
        True,
    ]
    text = pa.chunked_array([pa.array(["a", None, "b"])])
    assert member(text, pa.chunked_array([pa.array(["b"])])).tolist() == [False, False, True]


def test_candidates_from_a_mask_or_positions_keep_every_shared_key():
    a = chunked([1, 2, 1, 3, 2, 1, 4], pa.int64(), 3)
    b = chunked(["x", "y", "x", "z", "q", "w", "x"], pa.string(), 2)
    mask = np.array([True, True, True, True, True, False, True])
    assert candidates([a, b], mask).tolist() == [0, 2]
    assert candidates([a, b], np.flatnonzero(mask)).tolist() == [0, 2]
    assert candidates([a], np.array([0, 1], dtype=np.int64)).tolist() == []


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.integers(-3, 30), max_size=80),
    st.integers(1, 9),
    st.lists(st.booleans(), min_size=80, max_size=80),
)
def test_dense_scan_finds_exactly_the_shared_values_across_chunks(values, chunk, alive):
    """The dense-range scan (stamps per value, chunk by chunk) equals pandas `duplicated`
    among the alive records, whatever chunk boundaries fall between equal values."""
    import etl_assets.clean.rules.grouping as grouping

    ints = np.array(values, dtype=np.int64)
    among = np.array(alive[: len(values)], dtype=bool)
    original = grouping._CHUNK
    grouping._CHUNK = chunk
    try:
        low, high = (int(ints.min()), int(ints.max())) if len(ints) else (0, 0)
        got_all = grouping._repeated_dense(ints, low, high)
        got_among = grouping._repeated_dense(ints, low, high, among)
    finally:
        grouping._CHUNK = original
    series = pd.Series(ints)
    assert got_all.tolist() == series.duplicated(keep=False).tolist()
    expected = np.zeros(len(ints), dtype=bool)
    expected[among] = series[among].duplicated(keep=False).to_numpy()
    assert got_among.tolist() == expected.tolist()
