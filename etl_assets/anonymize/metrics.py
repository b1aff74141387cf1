"""Utility metrics as ARX defines them (org.deidentifier.arx.metric.v2).

- Loss (``MetricMDNMLoss``, gs-factor 0.5): per quasi-identifier, the mean over records of
  (leaves under the generalized value - 1) / (hierarchy domain size - 1); a suppressed record
  counts 1. Dimensions are aggregated with ARX's default geometric mean
  (``prod(v_i + 1) ** (1/q) - 1``) or the arithmetic mean.
- Non-uniform entropy (``MetricMDNUEntropy``): sum over QIs and records of
  ``log2(freq(generalized value) / freq(original value))``, frequencies in the input; a
  suppressed record counts as generalized to the root: ``log2(N / freq(original value))``.
- Discernibility (``MetricSDNMDiscernability``): sum of squared class sizes of non-suppressed
  classes plus ``|suppressed| * N``.
- Average equivalence class size, minimum class size and suppressed records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .hierarchy import Hierarchy


@dataclass
class ColumnStats:
    """Per-level lookup tables of one QI over the (deduplicated) records, for fast metrics."""

    shares: list[np.ndarray]  # level -> per level-0 code: normalized loss share
    log_ratio: list[np.ndarray]  # level -> per level-0 code: log2(freq(gen) / freq(orig))
    log_gen: list[np.ndarray]  # level -> per level-0 code: log2(N / freq(gen)), extra if suppressed
    loss_total: np.ndarray  # level -> sum over records of share (no suppression)
    entropy_total: np.ndarray  # level -> sum over records of log_ratio (no suppression)


def column_stats(h: Hierarchy, codes: np.ndarray, weights: np.ndarray) -> ColumnStats:
    """Precompute loss shares and entropy terms per level for level-0 ``codes`` with ``weights``."""
    n = float(weights.sum())
    freq0 = np.bincount(codes, weights=weights, minlength=h.domain_size)
    shares, log_ratio, log_gen, loss_total, ent_total = [], [], [], [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        for lvl in range(h.levels):
            s = h.shares(lvl)
            shares.append(s)
            freq_l = np.bincount(h.maps[lvl], weights=freq0, minlength=len(h.labels[lvl]))
            lr = np.where(freq0 > 0, np.log2(freq_l[h.maps[lvl]] / freq0), 0.0)
            log_ratio.append(lr)
            log_gen.append(np.where(freq0 > 0, np.log2(n / freq_l[h.maps[lvl]]), 0.0))
            loss_total.append(float((s * freq0).sum()))
            ent_total.append(float((lr * freq0).sum()))
    return ColumnStats(shares, log_ratio, log_gen, np.array(loss_total), np.array(ent_total))


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
) -> dict[str, float]:
    """All metrics of a transformation from its classes and the suppressed-row mask.

    ``codes`` is (rows x q) level-0 codes, ``weights`` the multiplicity of each row,
    ``suppressed`` a row mask, ``class_sizes``/``class_ok`` per class.
    """
    n = float(weights.sum())
    w_s = weights[suppressed]
    n_supp = float(w_s.sum())
    per_col = np.empty(len(stats))
    entropy = 0.0
    for d, (st, lvl) in enumerate(zip(stats, node, strict=True)):
        c_s = codes[suppressed, d]
        loss_d = st.loss_total[lvl] - float((st.shares[lvl][c_s] * w_s).sum()) + n_supp
        per_col[d] = loss_d / n if n else 0.0
        entropy += st.entropy_total[lvl] + float((st.log_gen[lvl][c_s] * w_s).sum())
    ok_sizes = class_sizes[class_ok]
    n_classes = int(len(ok_sizes))
    return {
        "loss": float(aggregate_loss(per_col, loss_aggregate)),
        "loss_arithmetic": float(per_col.mean()) if len(per_col) else 0.0,
        "loss_geometric": float(aggregate_loss(per_col, "geometric")) if len(per_col) else 0.0,
        "entropy": float(entropy),
        "discernibility": float((ok_sizes.astype(float) ** 2).sum() + n_supp * n),
        "avg_class_size": float(ok_sizes.sum() / n_classes) if n_classes else 0.0,
        "min_class_size": float(ok_sizes.min()) if n_classes else 0.0,
        "classes": float(n_classes),
        "suppressed": n_supp,
        **{f"loss_{i}": float(v) for i, v in enumerate(per_col)},
    }
