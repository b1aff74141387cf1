"""Distinct counts for the asset profile: exact up to the limit, a close estimate beyond it, in
bounded memory; equal values hash equally whatever array, slice or chunk they come in."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_assets.distinct import EXACT_LIMIT, DistinctCounter, value_hashes

SMALL = [
    pa.array(["a", "b", None, "a", "", "ünï", "b"]),
    pa.array([1, 2, 2, None, -5], pa.int64()),
    pa.array([1.5, -0.0, 0.0, None, 1.5]),
    pa.array([True, False, None, True]),
    pa.array([dt.date(2020, 1, 1), dt.date(2020, 1, 1), None, dt.date(1900, 5, 6)]),
    pa.array([dt.datetime(2020, 1, 1, 3), None, dt.datetime(2020, 1, 1, 3)], pa.timestamp("us")),
    pa.array(["x", "y", "x"]).dictionary_encode(),
]


@pytest.mark.parametrize("values", SMALL, ids=lambda v: str(v.type))
def test_below_the_limit_the_count_is_exact(values):
    counter = DistinctCounter()
    for start in range(0, len(values), 2):
        counter.add(values.slice(start, 2))
    assert counter.exact
    plain = values.dictionary_decode() if pa.types.is_dictionary(values.type) else values
    assert counter.count() == pc.count_distinct(plain, mode="only_valid").as_py()


def test_equal_values_hash_equally_in_any_slice_or_chunk():
    values = pa.array(["alpha", "", "beta", None, "alpha", "gamma", "beta"])
    whole = value_hashes(values)
    assert whole[0] == whole[3] and whole[2] == whole[5] and len(set(whole)) == 4
    assert list(value_hashes(values.slice(4))) == list(whole[3:])
    assert list(value_hashes(values.cast(pa.large_string()))) == list(whole)


@pytest.mark.parametrize("kind", ["int", "str"])
def test_beyond_the_limit_the_estimate_is_within_a_few_percent(kind):
    rng = np.random.default_rng(7)
    values = pa.array(rng.integers(0, 3_000_000, 300_000))
    if kind == "str":
        values = pc.cast(values, pa.string())
    truth = pc.count_distinct(values).as_py()
    counter = DistinctCounter()
    for start in range(0, len(values), 50_000):
        counter.add(values.slice(start, 50_000))
    assert not counter.exact and truth > EXACT_LIMIT
    assert abs(counter.count() - truth) / truth < 0.04  # standard error ~0.8%


@pytest.mark.parametrize("n", [40_000, 200_000], ids=["exact", "estimated"])
def test_a_batch_in_many_chunks_counts_as_the_same_batch_whole(n):
    """A reader's small blocks leave a batch in many chunks: the counter sees the same values,
    and so gives the same count, as for the batch in one array."""
    rng = np.random.default_rng(3)
    values = pc.cast(pa.array(rng.integers(0, n, 2 * n)), pa.string())
    values = pc.if_else(pa.array(rng.random(2 * n) < 0.01), pa.scalar(None, pa.string()), values)
    whole, chunked = DistinctCounter(), DistinctCounter()
    for start in range(0, len(values), n // 2):
        batch = values.slice(start, n // 2)
        whole.add(batch)
        chunked.add(pa.chunked_array([batch.slice(i, 997) for i in range(0, len(batch), 997)]))
    assert chunked.exact == whole.exact == (n <= EXACT_LIMIT)
    assert chunked.count() == whole.count()
    if whole.exact:
        assert whole.count() == pc.count_distinct(values, mode="only_valid").as_py()


def test_a_chunked_dictionary_column_is_counted_by_its_values():
    a = pa.array(["x", "y", "x"]).dictionary_encode()
    b = pa.array(["z", "x"]).dictionary_encode()  # another dictionary
    counter = DistinctCounter()
    counter.add(pa.chunked_array([a, b]))
    counter.add(pa.chunked_array([], type=a.type))
    assert counter.exact and counter.count() == 3


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.text(max_size=40), st.none()), min_size=1, max_size=30),
    cut=st.integers(min_value=0, max_value=30),
)
def test_a_string_hashes_alike_whatever_batch_it_comes_in(values, cut):
    """A string's hash is its own: the same in a slice, in another batch with other lengths
    around it, and different for strings that differ only in padding-like bytes."""
    array = pa.array(values, pa.string())
    whole = value_hashes(array)
    cut = min(cut, len(values))
    parts = np.concatenate([value_hashes(array.slice(0, cut)), value_hashes(array.slice(cut))])
    assert list(parts) == list(whole)
    present = [v for v in values if v is not None]
    alone = [value_hashes(pa.array([v]))[0] for v in present]
    assert alone == list(whole)
    distinct = {v: h for v, h in zip(present, alone, strict=True)}
    assert len(set(distinct.values())) == len(distinct)


def test_trailing_zero_bytes_and_lengths_are_told_apart():
    values = pa.array(
        ["a", "a\x00", "a\x00\x00\x00\x00\x00\x00\x00", "", "\x00"] + ["x" * 8, "x" * 9]
    )
    assert len(set(value_hashes(values))) == len(values)
