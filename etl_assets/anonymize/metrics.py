"""Utility metrics as ARX defines them (org.deidentifier.arx.metric.v2).

- Loss (``MetricMDNMLoss``, gs-factor 0.5): per quasi-identifier, the mean over records of
  (leaves under the generalized value - 1) / (hierarchy domain size - 1); a suppressed record
  counts 1. Dimensions are aggregated with ARX's default geometric mean
  (``prod(v_i + 1) ** (1/q) - 1``) or the arithmetic mean.
- Non-uniform entropy (``MetricMDNUNMEntropyPrecomputed``, ARX's default non-monotonic
  variant): sum over QIs and *all* records of ``log2(freq(generalized value) / freq(original
  value))``, frequencies in the input, plus, per QI, the entropy of suppressing the suppressed
  records' generalized values: ``sum_g c_g * log2(S / c_g)`` with ``S`` suppressed records and
  ``c_g`` of them with generalized value ``g``.
  The monotonic variant (``MetricMDNUEntropyPrecomputed``, ``entropy_monotonic``) ignores
  suppression: only the first term.
- Discernibility (``MetricSDNMDiscernability``, non-monotonic DM): sum of squared class sizes of
  non-suppressed classes plus ``|suppressed| * N``. The monotonic DM* (``MetricSDDiscernability``,
  ``discernibility_monotonic``) is the sum of squared sizes of all classes, suppressed or not.
- Average equivalence class size, minimum class size and suppressed records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .hierarchy import Hierarchy

# Metrics the search can minimize (ARX: Loss, non-monotonic / monotonic non-uniform entropy,
# non-monotonic DM / monotonic DM*).
METRICS = (
    "loss",
    "entropy",
    "entropy_monotonic",
    "discernibility",
    "discernibility_monotonic",
)


@dataclass
class ColumnStats:
    """Per-level lookup tables of one QI over the (deduplicated) records, for fast metrics."""

    shares: list[np.ndarray]  # level -> per level-0 code: normalized loss share
    log_ratio: list[np.ndarray]  # level -> per level-0 code: log2(freq(gen) / freq(orig))
    maps: np.ndarray  # (levels, domain): level-0 code -> generalized code
    loss_total: np.ndarray  # level -> sum over records of share (no suppression)
    entropy_total: np.ndarray  # level -> sum over records of log_ratio (no suppression)
    size: float = 1.0  # hierarchy domain size (rows of the hierarchy, as ARX's DomainShare)
    raw: list[np.ndarray] = field(default_factory=list)  # level -> ARX domain share leaves/size
    raw_total: np.ndarray = field(default_factory=lambda: np.zeros(0))  # level -> sum of raw


def loss_factors(gs_factor: float = 0.5) -> tuple[float, float]:
    """ARX ``MetricMDNMLoss`` generalization and suppression factors for a gs-factor in [0, 1]."""
    if not 0.0 <= gs_factor <= 1.0:
        raise ValueError(f"gs_factor must be in [0, 1], got {gs_factor}")
    s_factor = 2.0 * gs_factor if gs_factor < 0.5 else 1.0
    g_factor = 1.0 if gs_factor <= 0.5 else 1.0 - 2.0 * (gs_factor - 0.5)
    return g_factor, s_factor


def loss_dimension(
    st: ColumnStats,
    level: int,
    codes_s: np.ndarray,
    w_s: np.ndarray,
    n: float,
    gs_factor: float = 0.5,
) -> float:
    """ARX Loss of one QI (``MetricMDNMLoss.getInformationLossInternal`` + normalization).

    Non-suppressed records count ``g * leaves/size``, suppressed ones ``1`` (``s`` = 1) or
    ``share + s * (1 - share)``; the sum is normalized as ``(x - g*n/size) / (n - g*n/size)``.
    """
    g_f, s_f = loss_factors(gs_factor)
    raw_s = float((st.raw[level][codes_s] * w_s).sum()) if len(w_s) else 0.0
    n_s = float(w_s.sum())
    supp = n_s if s_f == 1.0 else raw_s + s_f * (n_s - raw_s)
    agg = g_f * (float(st.raw_total[level]) - raw_s) + supp
    lo = g_f * n / st.size
    if n - lo <= 0:
        return 0.0
    return max(0.0, (agg - lo) / (n - lo))


def loss_bound(st: ColumnStats, levels: np.ndarray, n: float, gs_factor: float = 0.5) -> np.ndarray:
    """ARX's lower bound of the Loss of one QI at ``levels``: generalization only."""
    g_f, _ = loss_factors(gs_factor)
    lo = g_f * n / st.size
    if n - lo <= 0:
        return np.zeros(len(levels))
    return np.maximum(0.0, (g_f * st.raw_total[levels] - lo) / (n - lo))


def column_stats(h: Hierarchy, codes: np.ndarray, weights: np.ndarray) -> ColumnStats:
    """Precompute loss shares and entropy terms per level for level-0 ``codes`` with ``weights``."""
    freq0 = np.bincount(codes, weights=weights, minlength=h.domain_size)
    shares, log_ratio, loss_total, ent_total, raw, raw_total = [], [], [], [], [], []
    size = float(h.domain_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        for lvl in range(h.levels):
            s = h.shares(lvl)
            shares.append(s)
            r = h.leaves[lvl][h.maps[lvl]] / size
            raw.append(r)
            raw_total.append(float((r * freq0).sum()))
            freq_l = np.bincount(h.maps[lvl], weights=freq0, minlength=len(h.labels[lvl]))
            lr = np.where(freq0 > 0, np.log2(freq_l[h.maps[lvl]] / freq0), 0.0)
            log_ratio.append(lr)
            loss_total.append(float((s * freq0).sum()))
            ent_total.append(float((lr * freq0).sum()))
    return ColumnStats(
        shares,
        log_ratio,
        h.maps,
        np.array(loss_total),
        np.array(ent_total),
        size,
        raw,
        np.array(raw_total),
    )


def suppression_entropy(st: ColumnStats, level: int, codes_s: np.ndarray, w_s: np.ndarray) -> float:
    """ARX's entropy of suppressing records: ``sum_g c_g log2(S / c_g)`` over generalized values.

    ``codes_s`` are the level-0 codes of the suppressed rows (weights ``w_s``); ``c_g`` counts the
    suppressed records whose value at ``level`` is ``g`` and ``S`` all suppressed records
    (``MetricMDNUNMEntropyPrecomputed.getInformationLossInternal``).
    """
    total = float(w_s.sum())
    if total <= 0:
        return 0.0
    g = st.maps[level][codes_s]
    c = np.bincount(g, weights=w_s)
    c = c[c > 0]
    return float((c * np.log2(total / c)).sum())


def aggregate_loss(per_column: np.ndarray, how: str = "geometric") -> np.ndarray:
    """Aggregate per-QI loss (last axis) like ARX: geometric mean of (v+1) minus 1, or mean."""
    per_column = np.asarray(per_column, dtype=float)
    if how == "geometric":
        q = per_column.shape[-1]
        return np.exp(np.log1p(per_column).sum(axis=-1) / q) - 1.0
    if how == "arithmetic":
        return per_column.mean(axis=-1)
    raise ValueError(f"loss aggregate {how!r}; expected 'geometric' or 'arithmetic'")


def node_metrics(
    stats: Sequence[ColumnStats],
    node: Sequence[int],
    codes: np.ndarray,
    weights: np.ndarray,
    suppressed: np.ndarray,
    class_sizes: np.ndarray,
    class_ok: np.ndarray,
    loss_aggregate: str = "geometric",
    gs_factor: float = 0.5,
) -> dict[str, float]:
    """All metrics of a transformation from its classes and the suppressed-row mask.

    ``codes`` is (rows x q) level-0 codes, ``weights`` the multiplicity of each row,
    ``suppressed`` a row mask, ``class_sizes``/``class_ok`` per class.
    """
    n = float(weights.sum())
    w_s = weights[suppressed]
    n_supp = float(w_s.sum())
    per_col = np.empty(len(stats))
    entropy_mono = 0.0
    entropy_supp = 0.0
    for d, (st, lvl) in enumerate(zip(stats, node, strict=True)):
        c_s = codes[suppressed, d]
        per_col[d] = loss_dimension(st, lvl, c_s, w_s, n, gs_factor) if n else 0.0
        entropy_mono += st.entropy_total[lvl]
        entropy_supp += suppression_entropy(st, lvl, c_s, w_s)
    ok_sizes = class_sizes[class_ok]
    n_classes = int(len(ok_sizes))
    return {
        "loss": float(aggregate_loss(per_col, loss_aggregate)),
        "loss_arithmetic": float(per_col.mean()) if len(per_col) else 0.0,
        "loss_geometric": float(aggregate_loss(per_col, "geometric")) if len(per_col) else 0.0,
        "entropy": float(entropy_mono + entropy_supp),
        "entropy_monotonic": float(entropy_mono),
        "discernibility": float((ok_sizes.astype(float) ** 2).sum() + n_supp * n),
        "discernibility_monotonic": float((np.asarray(class_sizes, dtype=float) ** 2).sum()),
        "avg_class_size": float(ok_sizes.sum() / n_classes) if n_classes else 0.0,
        "min_class_size": float(ok_sizes.min()) if n_classes else 0.0,
        "classes": float(n_classes),
        "suppressed": n_supp,
        **{f"loss_{i}": float(v) for i, v in enumerate(per_col)},
    }
