"""Record-level operations: suppression, anatomization, permutation, perturbation, pseudonyms.

Randomness comes from the caller: a `KeyedRandom` (what the pipeline uses — per-record numbers
keyed by a secret, so an unchanged record gets the same output in every version) or a seeded
``numpy.random.Generator`` (plain draws, for tests and benchmarks of the operations themselves).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .keyed import KeyedRandom

Random = np.random.Generator | KeyedRandom


def _order(random: Random, purpose: str, n: int) -> np.ndarray:
    """A random order of `n` records: keyed per record, or drawn from a generator."""
    if isinstance(random, KeyedRandom):
        return np.argsort(random.uniform(purpose), kind="stable")
    return random.permutation(n)


def suppress_cells(
    column: pd.Series, mask: np.ndarray | None = None, marker: str | None = "*"
) -> pd.Series:
    """Replace the cells selected by ``mask`` (all when None) with ``marker`` (None = null)."""
    out = column.astype(object).copy()
    if mask is None:
        mask = np.ones(len(column), dtype=bool)
    out[np.asarray(mask, dtype=bool)] = marker
    return out


def suppress_records(
    df: pd.DataFrame,
    mask: np.ndarray,
    limit: int | None = None,
    how: str = "drop",
    columns: Sequence[str] | None = None,
    marker: str = "*",
) -> pd.DataFrame:
    """Drop the records in ``mask`` (or mask their ``columns``); refuse more than ``limit``."""
    mask = np.asarray(mask, dtype=bool)
    if limit is not None and int(mask.sum()) > limit:
        raise ValueError(f"suppressing {int(mask.sum())} records exceeds the limit of {limit}")
    if how == "drop":
        return df.loc[~mask].reset_index(drop=True)
    if how != "mask":
        raise ValueError(f"record suppression {how!r}; expected 'drop' or 'mask'")
    out = df.copy()
    for c in columns if columns is not None else df.columns:
        out[c] = suppress_cells(out[c], mask, marker)
    return out


# ----------------------------------------------------------------------------- anatomization


class AnatomyError(ValueError):
    """The table cannot be split into l-diverse groups."""


def anatomize(
    df: pd.DataFrame,
    qis: Sequence[str],
    sensitive: str,
    l: int,  # noqa: E741
    rng: Random,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Anatomy (Xiao & Tao, VLDB 2006): QIT (QIs + group id) and ST (group id, value, count).

    Groups are built by the paper's algorithm: repeatedly take one record from each of the ``l``
    currently largest sensitive-value buckets; the at most ``l - 1`` residual records are added to
    groups that do not yet contain their value. Each group then has ``l`` distinct values, each
    with frequency 1/l (residual-extended groups: at most 1/l per value).
    """
    if l < 1:
        raise AnatomyError(f"anatomization needs l >= 1, got {l}")
    n = len(df)
    codes, values = pd.factorize(df[sensitive], use_na_sentinel=False)
    counts = np.bincount(codes, minlength=len(values))
    if n and counts.max() * l > n:
        raise AnatomyError(
            f"anatomization l={l} on {sensitive!r}: the most frequent value occurs {int(counts.max())} "
            f"times in {n} records; expected at most n/l = {n // l} (eligibility condition)"
        )
    # Records of each value in random order.
    perm = _order(rng, "anatomize:order", n)
    by_val = perm[np.argsort(codes[perm], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(counts)])
    remaining = counts.copy()
    group = np.full(n, -1, dtype=np.int64)
    g = 0
    # Group-creation: the loop runs once per group (n / l times), each step vectorized over l values.
    while (remaining > 0).sum() >= l:
        top = np.argpartition(-remaining, l - 1)[:l]
        take = starts[top] + (counts[top] - remaining[top])
        group[by_val[take]] = g
        remaining[top] -= 1
        g += 1
    # Residue-assignment: each leftover record goes to a random group lacking its value.
    left = np.nonzero(remaining)[0]
    pick = rng.uniform("anatomize:residue") if isinstance(rng, KeyedRandom) else None
    for v in left:
        for j in range(int(remaining[v])):
            rec = by_val[starts[v] + counts[v] - remaining[v] + j]
            has = np.unique(group[codes == v])
            candidates = np.setdiff1d(np.arange(g), has)
            if not len(candidates):
                raise AnatomyError(
                    f"anatomization l={l} on {sensitive!r}: no group can take a residual record"
                )
            if pick is None:
                group[rec] = rng.choice(candidates)
            else:
                group[rec] = candidates[min(int(pick[rec] * len(candidates)), len(candidates) - 1)]
    qit = df[list(qis)].copy()
    qit.insert(0, "group_id", group)
    st = (
        pd.DataFrame({"group_id": group, sensitive: df[sensitive].to_numpy()})
        .groupby(["group_id", sensitive], sort=True, dropna=False)
        .size()
        .rename("count")
        .reset_index()
    )
    return qit, st


# ----------------------------------------------------------------------------- permutation


def permute(
    values: pd.Series | np.ndarray,
    rng: Random,
    groups: np.ndarray | None = None,
    purpose: str = "permute",
) -> np.ndarray:
    """Shuffle ``values`` within each group (or the whole column when ``groups`` is None).

    Keyed: each record's slot and the order of the values it can receive are keyed per record,
    so a class whose records did not change is permuted the same way in every version."""
    arr = np.asarray(values)
    n = len(arr)
    if isinstance(rng, KeyedRandom):
        codes = np.zeros(n, dtype=np.int64) if groups is None else pd.factorize(groups)[0]
        slots = np.lexsort((rng.uniform(f"{purpose}:slot"), codes))
        order = np.lexsort((rng.uniform(f"{purpose}:order"), codes))
        out = np.empty_like(arr)
        out[slots] = arr[order]
        return out
    if groups is None:
        return arr[rng.permutation(n)]
    groups, _ = pd.factorize(np.asarray(groups))  # dense non-negative codes
    bits = max(int(n).bit_length(), 1)
    if int(groups.max(initial=0)).bit_length() + bits > 62:
        order = np.lexsort((rng.random(n), groups))
        slots = np.argsort(groups, kind="stable")
    else:
        # Pack (group, tiebreak) into one int64 and sort values (SIMD sort, no argsort):
        # a random permutation as tiebreak gives each group's members in uniformly random order.
        g = groups.astype(np.int64) << bits
        mask = (1 << bits) - 1
        r = rng.permutation(n)
        inv = np.empty(n, dtype=np.int64)
        inv[r] = np.arange(n)
        order = inv[np.sort(g | r) & mask]
        slots = np.sort(g | np.arange(n)) & mask
    out = np.empty_like(arr)
    out[slots] = arr[order]
    return out


# ----------------------------------------------------------------------------- perturbation


def noise_scale(
    kind: str,
    scale: float | None = None,
    epsilon: float | None = None,
    sensitivity: float = 1.0,
    delta: float = 1e-5,
) -> float:
    """The noise scale: given directly, or b = Δ/ε (Laplace), σ = Δ·sqrt(2 ln(1.25/δ))/ε (Gaussian)."""
    if scale is not None:
        if scale < 0:
            raise ValueError(f"noise scale must be >= 0, got {scale}")
        return float(scale)
    if epsilon is None or epsilon <= 0:
        raise ValueError(
            f"{kind} noise needs 'scale' or a privacy budget 'epsilon' > 0, got {epsilon}"
        )
    if kind == "laplace":
        return sensitivity / epsilon
    if kind == "gaussian":
        return sensitivity * np.sqrt(2.0 * np.log(1.25 / delta)) / epsilon
    raise ValueError(f"epsilon is only defined for laplace or gaussian noise, not {kind!r}")


def add_noise(
    values: np.ndarray,
    rng: Random,
    kind: str = "laplace",
    scale: float = 1.0,
    purpose: str = "noise",
) -> np.ndarray:
    """Additive Laplace/Gaussian noise, or multiplicative ``x * (1 + N(0, scale))``."""
    x = np.asarray(values, dtype=np.float64)
    keyed = isinstance(rng, KeyedRandom)
    if kind == "laplace":
        return x + (rng.laplace(purpose, scale) if keyed else rng.laplace(0.0, scale, x.shape))
    if kind in ("gaussian", "multiplicative"):
        z = rng.normal(purpose) if keyed else rng.normal(0.0, 1.0, x.shape)
        return x + scale * z if kind == "gaussian" else x * (1.0 + scale * z)
    raise ValueError(f"noise kind {kind!r}; expected laplace, gaussian or multiplicative")


def round_to(values: np.ndarray, base: float) -> np.ndarray:
    """Round to the nearest multiple of ``base``."""
    if base <= 0:
        raise ValueError(f"rounding base must be > 0, got {base}")
    return np.round(np.asarray(values, dtype=np.float64) / base) * base


def clip(values: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """Clip to the declared range so perturbed values stay valid."""
    return np.clip(values, -np.inf if lo is None else lo, np.inf if hi is None else hi)


def perturb(
    values: pd.Series,
    rng: Random,
    kind: str | None = None,
    scale: float | None = None,
    epsilon: float | None = None,
    sensitivity: float = 1.0,
    delta: float = 1e-5,
    round_base: float | None = None,
    clip_min: float | None = None,
    clip_max: float | None = None,
) -> pd.Series:
    """Noise, then clipping to the declared range, then rounding (kept inside the range)."""
    if not pd.api.types.is_numeric_dtype(values):
        raise ValueError(
            f"column {values.name!r}: perturbation needs a numeric column, got {values.dtype}"
        )
    x = values.to_numpy(dtype=np.float64, na_value=np.nan)
    if kind is not None:
        b = noise_scale(kind, scale, epsilon, sensitivity, delta)
        x = add_noise(x, rng, kind, b, purpose=f"noise:{values.name}")
    x = clip(x, clip_min, clip_max)
    if round_base is not None:
        x = round_to(x, round_base)
        # Rounding may step over a bound: use the nearest multiple inside the range.
        if clip_max is not None:
            x = np.where(x > clip_max, np.floor(clip_max / round_base) * round_base, x)
        if clip_min is not None:
            x = np.where(x < clip_min, np.ceil(clip_min / round_base) * round_base, x)
    out = pd.Series(x, index=values.index, name=values.name)
    if pd.api.types.is_integer_dtype(values) and (
        round_base is not None and float(round_base).is_integer() or kind is None
    ):
        out = out.round().astype(values.dtype)
    return out


# ----------------------------------------------------------------------------- pseudonyms


MEMO_TRIAL = 500_000  # values looked up before the memo decides whether it pays
MEMO_MIN_HITS = 0.05  # share of them it must have known
MEMO_LIMIT = 1 << 21  # distinct values a memo keeps (about 80 MB); later ones are hashed again


class PseudonymMemo:
    """Pseudonyms already computed for one integer column, sorted by value: a table anonymized
    batch by batch hashes each distinct value once, and finding a batch's values is a binary
    search. Integers only (their value is their text's identity); at most `MEMO_LIMIT` values,
    so memory stays bounded whatever the table's cardinality. A column whose values hardly
    repeat (a table's own key) is not worth remembering: once `MEMO_TRIAL` values were looked
    up with under `MEMO_MIN_HITS` of them known, the memo empties and stops."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.values = np.zeros(0, dtype="S1")  # the pseudonyms, as ASCII
        self.looked_up = self.hits = 0
        self.closed = False

    def lookup(self, keys: np.ndarray, compute) -> list[str]:
        """The pseudonyms of the distinct integers `keys`, computing (and remembering) only the
        unknown ones with `compute(texts)`."""
        order = np.argsort(keys, kind="stable")  # probed in order: see keyset.search_sorted
        ordered = keys[order]
        at = np.searchsorted(self.keys, ordered)  # also where a missing key is to be inserted
        pos = np.minimum(at, max(len(self.keys) - 1, 0))
        known = self.keys[pos] == ordered if len(self.keys) else np.zeros(len(keys), dtype=bool)
        missing = ordered[~known]
        fresh = np.array(compute([str(k) for k in missing.tolist()]) or [b""], dtype="S")
        width = np.dtype(f"S{max(self.values.itemsize, fresh.itemsize)}")
        self.values = self.values.astype(width, copy=False)
        out = np.empty(len(keys), dtype=width)
        out[order[known]] = self.values[pos[known]]
        out[order[~known]] = fresh[: len(missing)]
        self.looked_up += len(keys)
        self.hits += len(keys) - len(missing)
        if self.looked_up >= MEMO_TRIAL and self.hits < MEMO_MIN_HITS * self.looked_up:
            self.closed = True
            self.keys, self.values = self.keys[:0], self.values[:0]
        room = 0 if self.closed else min(MEMO_LIMIT - len(self.keys), len(missing))
        if room > 0:
            self.keys = np.insert(self.keys, at[~known][:room], missing[:room])
            self.values = np.insert(self.values, at[~known][:room], fresh[:room])
        return out.astype(str).tolist()


def _hmac_pads(secret: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 with the key's inner and outer pads absorbed (RFC 2104): HMAC(secret, m) is
    outer.update(inner.update(m).digest()), so each value costs two short hashes, no setup."""
    key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _hmac_hex(keys: list[str], secret: bytes, length: int) -> list[str]:
    """HMAC-SHA256(secret, key) as hex, its first `length` characters, for each key."""
    inner, outer = _hmac_pads(secret)
    new_inner, new_outer = inner.copy, outer.copy
    hashed = []
    for k in keys:  # one HMAC per distinct value; hashing itself has no vectorized form
        i = new_inner()
        i.update(k.encode("utf-8"))
        o = new_outer()
        o.update(i.digest())
        hashed.append(o.hexdigest()[:length])
    return hashed


def _key_texts(uniq: pd.Index) -> list[str]:
    """`str(value)` of each distinct value; Arrow integers and texts are cast in Arrow, which
    writes them exactly as `str` does, instead of boxing every value one by one."""
    dtype = uniq.dtype
    arrow = dtype.pyarrow_dtype if isinstance(dtype, pd.ArrowDtype) else None
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        arrow = pa.string()
    if arrow is not None and (pa.types.is_integer(arrow) or _is_text(arrow)):
        return pc.cast(pa.array(uniq.array), pa.string()).to_pylist()
    return [str(v) for v in uniq]


def _integers(uniq: pd.Index) -> np.ndarray | None:
    """The distinct values as int64 when they are integers that fit (the memo's keys)."""
    dtype = uniq.dtype
    if isinstance(dtype, pd.ArrowDtype):
        t = dtype.pyarrow_dtype
        fits = pa.types.is_signed_integer(t) or pa.types.is_unsigned_integer(t) and t.bit_width < 64
    else:
        fits = dtype.kind == "i" or dtype.kind == "u" and dtype.itemsize < 8
    return np.asarray(uniq.to_numpy(dtype=np.int64), dtype=np.int64) if fits else None


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def pseudonymize(
    values: pd.Series, secret: bytes, length: int = 32, memo: PseudonymMemo | None = None
) -> pd.Series:
    """HMAC-SHA256(secret, str(value)) as hex (first ``length`` chars); nulls stay null.

    The same value maps to the same pseudonym in every table, so keys keep joining. Each distinct
    value is hashed once (across batches too, with a `memo`, for integer columns).
    """
    if not secret:
        raise ValueError("pseudonymization needs a non-empty secret key (from the environment)")
    if pd.api.types.is_float_dtype(values) and (values.dropna() == values.dropna().round()).all():
        values = values.astype("Int64")  # 1.0 and 1 must give the same pseudonym
    codes, uniq = pd.factorize(values, use_na_sentinel=True)
    integers = _integers(uniq) if memo is not None else None
    if integers is None:
        hashed = _hmac_hex(_key_texts(uniq), secret, length)
    else:
        hashed = memo.lookup(integers, lambda missing: _hmac_hex(missing, secret, length))
    # Arrow text taken per record: 36 bytes a record for 32-character pseudonyms, where an
    # object column points at one Python string per distinct value (~80 bytes each)
    indices = pa.array(codes, mask=codes < 0)
    pseudonyms = pa.array(hashed, type=pa.string()).take(indices)
    return pd.Series(
        pd.arrays.ArrowExtensionArray(pseudonyms), index=values.index, name=values.name
    )
