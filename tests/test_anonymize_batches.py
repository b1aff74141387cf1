"""The batched anonymize path's own parts: pseudonyms are HMAC-SHA256 of each value's `str`
whatever the column's type and the key's length; the parents' key set probed batch by batch
answers exactly what Arrow's `is_in` answers, hash collisions included."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_assets.anonymize import keyset, operations
from etl_assets.anonymize.keyset import KeySet
from etl_assets.anonymize.operations import PseudonymMemo, pseudonymize

COLUMNS = {
    "int64[pyarrow]": [3, -12, None, 3, 2**62],
    "int32[pyarrow]": [7, None, -1],
    "Int64": [5, None, 5],
    "int64": [0, -9, 123456789012],
    "float64": [1.0, 2.0, None],  # whole floats hash as the integers they are
    "float64[pyarrow]": [1.5, -0.25, None],
    "string[pyarrow]": ["Zoë", "", None, "a,b"],
    "string": ["x", None],
    "object": ["é", 4, None],
    "bool[pyarrow]": [True, False, None],
}


def _reference(value, secret: bytes) -> str | None:
    if value is None or value is pd.NA:
        return None
    return hmac.new(secret, str(value).encode(), hashlib.sha256).hexdigest()[:32]


def test_pseudonyms_are_the_hmac_of_each_values_text_for_every_type_and_key_length():
    for secret in (b"k", b"s" * 64, b"long key " * 20):
        for dtype, values in COLUMNS.items():
            out = pseudonymize(pd.Series(values, dtype=dtype), secret)
            assert out.dtype == pd.ArrowDtype(pa.string())  # Arrow text, not Python objects
            got = [None if pd.isna(v) else v for v in out.tolist()]  # nulls stay null
            shown = [int(v) if dtype == "float64" and v is not None else v for v in values]
            assert got == [_reference(v, secret) for v in shown], (dtype, len(secret))
    dates = pd.Series(pd.array([dt.date(2024, 2, 29), None], dtype="date32[pyarrow]"))
    got = [None if pd.isna(v) else v for v in pseudonymize(dates, b"k").tolist()]
    assert got == [_reference("2024-02-29", b"k"), None]


@pytest.mark.parametrize("size", [1, 7, 64, 500])
@pytest.mark.parametrize("dtype", ["int64[pyarrow]", "Int64", "uint16[pyarrow]"])
def test_a_full_memo_still_gives_the_pseudonyms_of_the_whole_column(monkeypatch, size, dtype):
    """Batch by batch through a memo (kept sorted, capped at 10 values here) = the whole column."""
    monkeypatch.setattr(operations, "MEMO_LIMIT", 10)
    rng = np.random.default_rng(size)
    values = pd.Series(rng.integers(0, 40, 300), dtype=dtype).mask(rng.random(300) < 0.1)
    for length in (32, 8):
        whole = pseudonymize(values, b"k" * 32, length=length).tolist()
        memo = PseudonymMemo()
        parts = [
            pseudonymize(values.iloc[i : i + size], b"k" * 32, length=length, memo=memo)
            for i in range(0, len(values), size)
        ]
        assert pd.concat(parts).tolist() == whole
        assert len(memo.keys) == 10 and (np.diff(memo.keys) > 0).all()


@pytest.mark.parametrize("repeats", [False, True])
def test_a_memo_closes_for_values_that_never_repeat_and_changes_nothing(monkeypatch, repeats):
    """A table's own key never repeats: after its trial the memo empties and stops remembering;
    a column whose values repeat keeps its memo. The pseudonyms are the same either way."""
    monkeypatch.setattr(operations, "MEMO_TRIAL", 200)
    values = pd.Series(np.arange(1000) % (100 if repeats else 1000), dtype="int64")
    whole = pseudonymize(values, b"k" * 32).tolist()
    memo = PseudonymMemo()
    parts = [
        pseudonymize(values.iloc[i : i + 50], b"k" * 32, memo=memo) for i in range(0, 1000, 50)
    ]
    assert pd.concat(parts).tolist() == whole
    assert memo.closed is not repeats
    assert len(memo.keys) == (100 if repeats else 0)


texts = st.lists(st.one_of(st.none(), st.text(alphabet="ab1é", max_size=3)), max_size=40)


def _is_in(values: list, keys: list) -> np.ndarray:
    keys = pc.unique(pa.array(keys, pa.string()).drop_null())
    return pc.is_in(pa.array(values, pa.string()), value_set=keys).to_numpy(zero_copy_only=False)


def _probe(keys: list, values: list) -> list[bool]:
    """Each value on its own (a binary search among the keys) and all at once."""
    keyset_ = KeySet(pa.chunked_array([pa.array(keys, pa.string())]))
    one = [bool(keyset_.contains(pa.array([v], pa.string()))[0]) for v in values]
    assert keyset_.contains(pa.array(values, pa.string())).tolist() == one
    return one


@settings(max_examples=200, deadline=None)
@given(keys=texts, values=texts)
def test_a_key_set_answers_what_is_in_answers(keys, values):
    assert _probe(keys, values) == _is_in(values, keys).tolist()


def _hashes(values):
    return np.zeros(len(values), dtype=np.uint64)


def test_a_key_set_is_exact_when_every_hash_collides(monkeypatch):
    """Equal hashes of different texts must not make a value a key, nor hide a key."""
    monkeypatch.setattr(keyset, "_hashes", _hashes)
    monkeypatch.setattr(keyset, "_fixed_hashes", lambda values, width: _hashes(values))
    for keys in (["a", "b", "c", None, "b"], ["a", "b", "c", "long"]):  # one width, several
        values = ["c", "x", None, "a", "", "b", "lonG"]
        assert _probe(keys, values) == [True, False, False, True, False, True, False]


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.one_of(st.none(), st.text(alphabet="ab1é", min_size=2, max_size=2))),
       values=texts)  # fmt: skip
def test_a_key_set_of_one_width_answers_what_is_in_answers(keys, values):
    """Keys of one byte width (pseudonyms) are hashed from their bytes; other widths are none."""
    assert _probe(keys, values) == _is_in(values, keys).tolist()
