"""The batched anonymize path's own parts: the parents' key set probed batch by batch answers
exactly what Arrow's `is_in` answers, hash collisions included."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_assets.anonymize import keyset
from etl_assets.anonymize.keyset import KeySet

texts = st.lists(st.one_of(st.none(), st.text(alphabet="ab1é", max_size=3)), max_size=40)


def _is_in(values: list, keys: list) -> np.ndarray:
    keys = pc.unique(pa.array(keys, pa.string()).drop_null())
    return pc.is_in(pa.array(values, pa.string()), value_set=keys).to_numpy(zero_copy_only=False)


@settings(max_examples=200, deadline=None)
@given(keys=texts, values=texts)
def test_a_key_set_answers_what_is_in_answers(keys, values):
    found = KeySet(pa.chunked_array([pa.array(keys, pa.string())])).contains(
        pa.array(values, pa.string())
    )
    assert found.tolist() == _is_in(values, keys).tolist()


def test_a_key_set_is_exact_when_every_hash_collides(monkeypatch):
    """Equal hashes of different texts must not make a value a key, nor hide a key."""
    monkeypatch.setattr(keyset, "_hashes", lambda values: np.zeros(len(values), dtype=np.uint64))
    keys = ["a", "b", "c", None, "b"]
    values = ["c", "x", None, "a", "", "b"]
    found = KeySet(pa.array(keys)).contains(pa.array(values, pa.string()))
    assert found.tolist() == [True, False, False, True, False, True]
