"""Privacy model checks: k-anonymity, distinct/entropy l-diversity, t-closeness (vectorized).

The per-class primitives (``*_violations``) are shared with the lattice search; the DataFrame
checks (``check_*``) verify a published table independently of how it was produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# ----------------------------------------------------------------------------- primitives


def class_ids(codes: Sequence[np.ndarray], cards: Sequence[int]) -> tuple[np.ndarray, int]:
    """Equivalence class id per row from per-column int codes (mixed radix, then densified)."""
    n = len(codes[0]) if len(codes) else 0
    key = np.zeros(n, dtype=np.int64)
    mult = 1
    for c, card in zip(codes, cards, strict=True):
        if mult * card >= 2**62:  # re-densify before overflow
            key, uniq = pd.factorize(key)
            key = key.astype(np.int64)
            mult = len(uniq)
        key += (c if c.dtype == np.int64 else c.astype(np.int64)) * mult
        mult *= max(int(card), 1)
    if mult <= max(4 * n, 1 << 16):
        counts = np.bincount(key, minlength=mult)
        present = counts > 0
        remap = np.cumsum(present) - 1
        return remap[key], int(present.sum())
    ids, uniq = pd.factorize(key)
    return ids, len(uniq)


def distribution_matrix(
    cls: np.ndarray, n_classes: int, sens: np.ndarray, n_values: int, weights=None
) -> np.ndarray:
    """``(classes x values)`` matrix of sensitive-value counts per class."""
    flat = cls.astype(np.int64) * n_values + sens
    return np.bincount(flat, weights=weights, minlength=n_classes * n_values).reshape(
        n_classes, n_values
    )


def distinct_l_violations(counts: np.ndarray, l: float) -> np.ndarray:  # noqa: E741
    """Classes with fewer than ``l`` distinct sensitive values."""
    return (counts > 0).sum(axis=1) < l


def entropy_l_violations(counts: np.ndarray, l: float) -> np.ndarray:  # noqa: E741
    """Classes whose sensitive-value entropy is below ``log(l)``."""
    sizes = counts.sum(axis=1, keepdims=True)
    p = np.divide(counts, sizes, out=np.zeros_like(counts, dtype=float), where=sizes > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return h < np.log(l) - 1e-12


def hierarchical_emd(
    counts: np.ndarray, global_dist: np.ndarray, level_maps: Sequence[np.ndarray]
) -> np.ndarray:
    """Hierarchical-distance EMD (Li et al., ICDE 2007; ARX ``HierarchicalDistanceTCloseness``).

    ``level_maps[l - 1][v]`` is the node at level ``l`` (1..H, H = root level) above value ``v``.
    Every inner node at level ``l`` costs ``l / H * min(pos, neg)``, where ``pos``/``neg`` sum the
    positive/negative surplus (global minus class share) of its children.
    """
    sizes = counts.sum(axis=1, keepdims=True)
    p = np.divide(counts, sizes, out=np.zeros_like(counts, dtype=float), where=sizes > 0)
    extra = global_dist[None, :] - p
    height = len(level_maps)
    prev = np.arange(counts.shape[1])
    cost = np.zeros(len(counts))
    for lvl, cur in enumerate(level_maps, start=1):
        cur = np.asarray(cur[: counts.shape[1]], dtype=np.int64)
        n_prev, n_cur = (
            int(prev.max()) + 1 if len(prev) else 0,
            int(cur.max()) + 1 if len(cur) else 0,
        )
        parent = np.zeros(n_prev, dtype=np.int64)
        parent[prev] = cur
        up = np.zeros((n_prev, n_cur))
        up[np.arange(n_prev), parent] = 1.0
        pos = np.maximum(extra, 0.0) @ up
        neg = np.maximum(-extra, 0.0) @ up
        cost += (lvl / height) * np.minimum(pos, neg).sum(axis=1)
        extra = extra @ up
        prev = cur
    return cost


def emd(
    counts: np.ndarray,
    global_dist: np.ndarray,
    distance: str = "equal",
    level_maps: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Earth mover's distance of each class's distribution to the global one.

    ``equal``: half the L1 distance. ``ordered``: columns are in value order; sum of absolute
    cumulative differences over (m - 1), as in Li et al., ICDE 2007. ``hierarchical``: see
    ``hierarchical_emd`` (``level_maps`` from the sensitive attribute's hierarchy).
    """
    if distance == "hierarchical":
        if level_maps is None:
            raise ValueError("hierarchical t-closeness needs the sensitive attribute's hierarchy")
        return hierarchical_emd(counts, global_dist, level_maps)
    sizes = counts.sum(axis=1, keepdims=True)
    p = np.divide(counts, sizes, out=np.zeros_like(counts, dtype=float), where=sizes > 0)
    diff = p - global_dist[None, :]
    if distance == "equal":
        return 0.5 * np.abs(diff).sum(axis=1)
    if distance == "ordered":
        m = counts.shape[1]
        if m <= 1:
            return np.zeros(len(counts))
        return np.abs(np.cumsum(diff, axis=1)[:, :-1]).sum(axis=1) / (m - 1)
    raise ValueError(
        f"t-closeness distance {distance!r}; expected 'equal', 'ordered' or 'hierarchical'"
    )


def t_violations(
    counts: np.ndarray,
    global_dist: np.ndarray,
    t: float,
    distance: str = "equal",
    level_maps: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Classes whose distance to the global distribution exceeds ``t``."""
    return emd(counts, global_dist, distance, level_maps) > t + 1e-12


# ----------------------------------------------------------------------------- table checks


@dataclass
class CheckResult:
    """Outcome of one privacy check on a table."""

    model: str
    satisfied: bool
    achieved: float  # the k, l or t the table actually reaches (worst class)
    violating_records: int
    records: int

    def message(self) -> str:
        """Human-readable one-liner."""
        status = "satisfied" if self.satisfied else "VIOLATED"
        pct = 100.0 * self.violating_records / max(self.records, 1)
        return (
            f"{self.model}: {status} (worst class reaches {self.achieved:g}; "
            f"{self.violating_records} of {self.records} records ({pct:.2f}%) in violating classes)"
        )


def _require(df: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"columns {missing} not in table; expected among {list(df.columns)}")


def table_classes(df: pd.DataFrame, qis: Sequence[str]) -> tuple[np.ndarray, int]:
    """Equivalence class id per row of ``df`` over ``qis`` (nulls are a value of their own)."""
    _require(df, qis)
    codes, cards = [], []
    for q in qis:
        c, u = pd.factorize(df[q], use_na_sentinel=False)
        codes.append(c)
        cards.append(len(u))
    if not qis:
        return np.zeros(len(df), dtype=np.int64), 1 if len(df) else 0
    return class_ids(codes, cards)


def _sensitive(
    df: pd.DataFrame, attr: str, order: Sequence | None = None
) -> tuple[np.ndarray, int]:
    _require(df, [attr])
    col = df[attr]
    if order is not None:
        cat = pd.Categorical(col, categories=list(order), ordered=True)
        if (cat.codes < 0).any():
            raise ValueError(f"column {attr!r}: values not in the declared order")
        return cat.codes.astype(np.int64), len(order)
    if pd.api.types.is_numeric_dtype(col):
        codes, uniq = pd.factorize(col, sort=True)
    else:
        codes, uniq = pd.factorize(col, sort=True, use_na_sentinel=False)
    return codes.astype(np.int64), len(uniq)


def check_k_anonymity(df: pd.DataFrame, qis: Sequence[str], k: int) -> CheckResult:
    """Every equivalence class over ``qis`` has at least ``k`` records."""
    cls, n = table_classes(df, qis)
    sizes = np.bincount(cls, minlength=n)
    bad = sizes < k
    return CheckResult(
        f"k-anonymity k={k}",
        not bad.any(),
        float(sizes.min()) if n else float("inf"),
        int(sizes[bad].sum()),
        len(df),
    )


def check_l_diversity(
    df: pd.DataFrame,
    qis: Sequence[str],
    sensitive: str,
    l: float,  # noqa: E741
    variant: str = "distinct",
) -> CheckResult:
    """Every class has ``l`` distinct sensitive values (or entropy >= log l for ``entropy``)."""
    cls, n = table_classes(df, qis)
    s, m = _sensitive(df, sensitive)
    counts = distribution_matrix(cls, n, s, m)
    if variant == "distinct":
        per_class = (counts > 0).sum(axis=1).astype(float)
        bad = per_class < l
    elif variant == "entropy":
        sizes = counts.sum(axis=1, keepdims=True)
        p = counts / np.maximum(sizes, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_class = np.exp(-np.where(p > 0, p * np.log(p), 0.0).sum(axis=1))
        bad = entropy_l_violations(counts, l)
    else:
        raise ValueError(f"l-diversity variant {variant!r}; expected 'distinct' or 'entropy'")
    sizes = counts.sum(axis=1)
    return CheckResult(
        f"{variant} l-diversity l={l} on {sensitive!r}",
        not bad.any(),
        float(per_class.min()) if n else float("inf"),
        int(sizes[bad].sum()),
        len(df),
    )


def check_t_closeness(
    df: pd.DataFrame,
    qis: Sequence[str],
    sensitive: str,
    t: float,
    distance: str = "equal",
    order: Sequence | None = None,
    reference: pd.Series | None = None,
    hierarchy=None,
) -> CheckResult:
    """Every class's sensitive distribution is within EMD ``t`` of the whole table's.

    ``ordered`` distance orders values by ``order`` or, by default, sorted (numeric) order.
    ``hierarchical`` distance uses ``hierarchy`` (a ``Hierarchy`` of the sensitive attribute).
    ``reference`` (e.g. the input column before suppression) overrides the global distribution.
    """
    cls, n = table_classes(df, qis)
    _require(df, [sensitive])
    level_maps = None
    if distance == "hierarchical":
        if hierarchy is None:
            raise ValueError("hierarchical t-closeness needs the sensitive attribute's hierarchy")
        order = list(hierarchy.table[:, 0])
        level_maps = [hierarchy.maps[lvl] for lvl in range(1, hierarchy.levels)]
    if reference is not None and order is None:
        both = pd.concat([df[sensitive], reference], ignore_index=True)
        order = pd.unique(both.sort_values(kind="stable"))
    s, m = _sensitive(df, sensitive, order)
    counts = distribution_matrix(cls, n, s, m)
    if reference is None:
        g = counts.sum(axis=0)
    else:
        ref = pd.Categorical(reference, categories=list(order))
        g = np.bincount(ref.codes[ref.codes >= 0], minlength=m).astype(float)
    g = g / max(g.sum(), 1)
    d = emd(counts, g, distance, level_maps)
    bad = d > t + 1e-12
    sizes = counts.sum(axis=1)
    return CheckResult(
        f"t-closeness t={t} ({distance}) on {sensitive!r}",
        not bad.any(),
        float(d.max()) if n else 0.0,
        int(sizes[bad].sum()),
        len(df),
    )
