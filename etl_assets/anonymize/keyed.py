"""Keyed per-record randomness, as the cell-key method does for statistical tables.

Every random number a consumer could see per record (perturbation noise, the order of a
permutation, the group of an anatomized record) is a keyed pseudo-random function of the
record's stable identity — a fingerprint of all its values — and of what the number is for. So a
record that did not change gets exactly the same published value in every version (averaging n
versions gains nothing), and a record that changed gets fresh noise. Without the secret key
nobody can compute the numbers, even knowing the record.

The fingerprint is pandas' 64-bit hash of the record's values; the keyed function is SipHash-2-4
(pandas' `hash_array` with a `hash_key`) under a key derived with HMAC-SHA256 from the secret
and the purpose. Everything is vectorized over the records.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import numpy as np
import pandas as pd


def fingerprints(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """A 64-bit fingerprint of each record's values in `columns` (its identity)."""
    if not len(df):
        return np.zeros(0, dtype=np.uint64)
    data = df[[c for c in columns if c in df.columns]]
    return pd.util.hash_pandas_object(data, index=False).to_numpy(dtype=np.uint64)


def _hash_key(secret: bytes, purpose: str) -> str:
    """A 16-character SipHash key (96 bits) for one purpose, derived from the secret."""
    digest = hmac.new(secret, f"dm-keyed-random:{purpose}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest[:12]).decode("ascii")


class KeyedRandom:
    """Per-record uniform numbers in (0, 1): the same record, secret and purpose give the same
    number in every run; different purposes give independent numbers."""

    def __init__(self, prints: np.ndarray, secret: bytes):
        if not secret:
            raise ValueError("keyed randomness needs a non-empty secret key")
        self.prints = np.asarray(prints, dtype=np.uint64)
        self.secret = secret
        # each fingerprint as 9 bytes (a non-zero last byte keeps NumPy from trimming zeros)
        raw = np.empty((len(self.prints), 9), dtype=np.uint8)
        raw[:, :8] = self.prints.view(np.uint8).reshape(-1, 8) if len(self.prints) else 0
        raw[:, 8] = 1
        self._blobs = raw.view("S9").ravel().astype(object)

    @classmethod
    def for_records(cls, df: pd.DataFrame, columns: list[str], secret: bytes) -> KeyedRandom:
        return cls(fingerprints(df, columns), secret)

    def __len__(self) -> int:
        return len(self.prints)

    def uniform(self, purpose: str) -> np.ndarray:
        """One number in the open interval (0, 1) per record, for `purpose`."""
        if not len(self.prints):
            return np.zeros(0)
        h = pd.util.hash_array(self._blobs, hash_key=_hash_key(self.secret, purpose))
        return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53

    def normal(self, purpose: str) -> np.ndarray:
        """One standard normal number per record (Box-Muller on two keyed uniforms)."""
        u, v = self.uniform(f"{purpose}:1"), self.uniform(f"{purpose}:2")
        return np.sqrt(-2.0 * np.log(u)) * np.cos(2.0 * np.pi * v)

    def laplace(self, purpose: str, scale: float) -> np.ndarray:
        """One Laplace(0, scale) number per record (inverse CDF of a keyed uniform)."""
        d = self.uniform(purpose) - 0.5
        return -scale * np.sign(d) * np.log1p(-2.0 * np.abs(d))
