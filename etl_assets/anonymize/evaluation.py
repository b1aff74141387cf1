"""A table encoded for the lattice search, and the evaluation of one node against the models.

``Problem`` deduplicates the records over the quasi-identifiers and sensitive attributes once
(``weights`` counts the records behind each row) and precomputes the metric lookups. A node is
evaluated by grouping the smallest cached class table of one of its predecessors (``rollup``), so
most nodes are grouped from a few hundred rows instead of the whole table. Records in classes that
violate a model are suppressed, as in ARX; a node is satisfied when at most ``floor(limit * N)``
records are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import privacy
from .hierarchy import Hierarchy
from .lattice import Lattice
from .metrics import (
    METRICS,
    ColumnStats,
    aggregate_loss,
    column_stats,
    loss_bound,
    loss_dimension,
    node_metrics,
    suppression_entropy,
)
from .rollup import ClassTable, Grouper, Rollup, first_rows
from .spec import PrivacyModel


@dataclass
class NodeResult:
    """Evaluation of one transformation."""

    node: tuple[int, ...]
    satisfied: bool
    suppressed: int
    score: float = float("inf")  # the optimized metric (inf when not satisfied)
    violations: dict[str, int] = field(
        default_factory=dict
    )  # model -> records in violating classes


@dataclass
class _Sensitive:
    codes: np.ndarray  # per deduplicated row
    n_values: int
    global_dist: np.ndarray


def encode_codes(
    df: pd.DataFrame, columns: Sequence[str], hierarchies: Sequence[Hierarchy]
) -> np.ndarray:
    """(rows x q) level-0 codes of ``columns`` in their hierarchies."""
    if not columns:
        return np.zeros((len(df), 0), dtype=np.int64)
    return np.stack([h.encode(df[c]) for c, h in zip(columns, hierarchies, strict=True)], axis=1)


class Problem:
    """A table encoded for the search: deduplicated rows, class tables, metric lookups."""

    def __init__(
        self,
        hierarchies: Sequence[Hierarchy],
        codes: np.ndarray,
        models: Sequence[PrivacyModel] = (),
        sensitive: dict[str, np.ndarray] | None = None,
        suppression_limit: float = 0.0,
        metric: str = "loss",
        loss_aggregate: str = "geometric",
        gs_factor: float = 0.5,
    ) -> None:
        self.hierarchies = list(hierarchies)
        self.models = list(models)
        if metric not in METRICS:
            raise ValueError(f"metric {metric!r}; expected one of {', '.join(METRICS)}")
        self.metric = metric
        self.loss_aggregate = loss_aggregate
        self.gs_factor = gs_factor  # ARX Loss gs-factor: 0.5 weighs generalization = suppression
        codes = np.asarray(codes, dtype=np.int64).reshape(len(codes), len(self.hierarchies))
        self.n = len(codes)
        self.max_outliers = int(np.floor(suppression_limit * self.n + 1e-9))
        self._deduplicate(codes, sensitive or {})
        self._level_maps = self._check_models()
        self.stats: list[ColumnStats] = [
            column_stats(h, self.codes[:, d], self.weights) for d, h in enumerate(self.hierarchies)
        ]
        self.heights = [h.levels for h in self.hierarchies]
        self.lattice = Lattice(self.heights)
        self.nodes = self.lattice.nodes
        self._model_names = [m.describe() for m in self.models]
        self._cache: dict[tuple[int, ...], NodeResult] = {}
        self._grouper = Grouper(self.hierarchies)
        base = ClassTable(
            [np.ascontiguousarray(self.codes[:, d]) for d in range(len(self.hierarchies))],
            {k: v.codes for k, v in self.sensitive.items()},
            self.weights,
        )
        self._rollup = Rollup(base, {k: v.n_values for k, v in self.sensitive.items()})

    def _deduplicate(self, codes: np.ndarray, sensitive: dict[str, np.ndarray]) -> None:
        """Rows distinct over QIs and sensitive attributes; every evaluation works on these."""
        sens_names = sorted(sensitive)
        sens_raw = [np.asarray(sensitive[s], dtype=np.int64) for s in sens_names]
        n_values = [int(s.max()) + 1 if len(s) else 1 for s in sens_raw]
        cols = [codes[:, d] for d in range(codes.shape[1])] + sens_raw
        cards = [h.domain_size for h in self.hierarchies] + n_values
        if self.n:
            # Original record -> its deduplicated row (maps the search's verdict back to records).
            self.row_index, n_distinct = privacy.class_ids(cols, cards)
            first = first_rows(self.row_index, n_distinct)
            self.weights = np.bincount(self.row_index, minlength=n_distinct).astype(np.int64)
        else:
            first = self.row_index = np.zeros(0, dtype=np.int64)
            self.weights = np.zeros(0, dtype=np.int64)
        self.codes = codes[first]
        self.sensitive = {}
        for name, raw, m in zip(sens_names, sens_raw, n_values, strict=True):
            g = np.bincount(raw, minlength=m).astype(float)
            self.sensitive[name] = _Sensitive(raw[first], m, g / max(g.sum(), 1.0))

    def _check_models(self) -> dict[int, list[np.ndarray]]:
        """Sensitive codes are given for every model; per hierarchical t-closeness, its level maps."""
        level_maps: dict[int, list[np.ndarray]] = {}
        for m in self.models:
            if m.kind != "k-anonymity" and m.attribute not in self.sensitive:
                raise ValueError(f"{m.describe()}: sensitive attribute codes not given")
            if m.kind == "t-closeness" and m.distance == "hierarchical":
                # Sensitive codes must be the hierarchy's level-0 codes (``Hierarchy.encode``).
                if m.hierarchy is None:
                    raise ValueError(f"{m.describe()}: the sensitive hierarchy is not given")
                h_s = m.hierarchy
                n_v = self.sensitive[m.attribute].n_values
                if n_v > h_s.domain_size:
                    raise ValueError(f"{m.describe()}: codes exceed the hierarchy's domain")
                level_maps[id(m)] = [h_s.maps[lvl][:n_v] for lvl in range(1, h_s.levels)]
        return level_maps

    # ------------------------------------------------------------------------ evaluation

    @property
    def monotone(self) -> bool:
        """Whether 'node fails => all predecessors fail' holds for these models and limit."""
        if self.max_outliers == 0:
            return True
        return all(
            m.kind == "k-anonymity" or (m.kind == "l-diversity" and m.variant == "distinct")
            for m in self.models
        )

    def classes(self, node: Sequence[int]) -> tuple[np.ndarray, int]:
        """Class id per deduplicated row and number of classes for ``node``."""
        return self._grouper.classes(self._rollup.base, node)

    def violations(
        self, cls: np.ndarray, n_classes: int, table: ClassTable | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """Class sizes, per-class 'violates some model' mask, and records violating each model.

        ``cls`` numbers the rows of ``table`` (default: the deduplicated rows).
        """
        t = self._rollup.base if table is None else table
        sizes = np.bincount(cls, weights=t.weights, minlength=n_classes)
        bad = np.zeros(n_classes, dtype=bool)
        per_model: dict[str, int] = {}
        for m, name in zip(self.models, self._model_names, strict=True):
            if m.kind == "k-anonymity":
                v = sizes < m.k
            else:
                s = self.sensitive[m.attribute]
                counts = privacy.distribution_matrix(
                    cls, n_classes, t.sens[m.attribute], s.n_values, t.weights
                )
                if m.kind == "l-diversity":
                    v = (
                        privacy.distinct_l_violations(counts, m.l)
                        if m.variant == "distinct"
                        else privacy.entropy_l_violations(counts, m.l)
                    )
                else:
                    v = privacy.t_violations(
                        counts, s.global_dist, m.t, m.distance, self._level_maps.get(id(m))
                    )
            per_model[name] = int(sizes[v].sum())
            bad |= v
        return sizes, bad, per_model

    def has_result(self, node: Sequence[int]) -> bool:
        """Whether ``node`` was evaluated already (``evaluate`` then costs nothing)."""
        return tuple(int(x) for x in node) in self._cache

    def evaluate(self, node: Sequence[int]) -> NodeResult:
        """Check the models on ``node`` and, if satisfied, compute the optimized metric."""
        key = tuple(int(x) for x in node)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        table = self._rollup.source(key)
        cls, n_classes = self._grouper.classes(table, key)
        sizes, bad, per_model = self.violations(cls, n_classes, table)
        suppressed = int(round(sizes[bad].sum()))
        res = NodeResult(key, suppressed <= self.max_outliers, suppressed, violations=per_model)
        if res.satisfied:
            res.score = self._score(key, cls, sizes, bad, table)
        self._rollup.store(key, table, cls, n_classes)
        self._cache[key] = res
        return res

    def _score(
        self,
        node: tuple[int, ...],
        cls: np.ndarray,
        sizes: np.ndarray,
        bad: np.ndarray,
        table: ClassTable,
    ) -> float:
        if self.metric == "discernibility":
            ok = sizes[~bad]
            n_s = float(sizes[bad].sum())
            return float((ok.astype(float) ** 2).sum() + n_s * self.n)
        if self.metric == "discernibility_monotonic":
            return float((sizes.astype(float) ** 2).sum())
        if self.metric == "entropy_monotonic":
            return float(sum(self.stats[d].entropy_total[lvl] for d, lvl in enumerate(node)))
        rows_bad = bad[cls]
        w_s = table.weights[rows_bad]
        codes_s = [c[rows_bad] for c in table.columns]
        if self.metric == "loss":
            per_col = np.array(
                [
                    loss_dimension(self.stats[d], lvl, codes_s[d], w_s, self.n, self.gs_factor)
                    for d, lvl in enumerate(node)
                ]
            )
            return float(aggregate_loss(per_col, self.loss_aggregate))
        total = 0.0
        for d, lvl in enumerate(node):
            st = self.stats[d]
            total += st.entropy_total[lvl] + suppression_entropy(st, lvl, codes_s[d], w_s)
        return total

    def metrics(self, node: Sequence[int]) -> dict[str, float]:
        """All ARX metrics of ``node`` (records in violating classes counted as suppressed)."""
        cls, n_classes = self.classes(node)
        sizes, bad, _ = self.violations(cls, n_classes)
        return node_metrics(
            self.stats,
            node,
            self.codes,
            self.weights,
            bad[cls],
            sizes,
            ~bad,
            self.loss_aggregate,
            self.gs_factor,
        )

    def lower_bounds(self) -> np.ndarray:
        """Per lattice node: a lower bound of the optimized metric valid under suppression."""
        if self.n == 0 or not self.hierarchies:
            return np.zeros(len(self.nodes))
        if self.metric == "loss":
            per_col = np.stack(
                [
                    loss_bound(self.stats[d], self.nodes[:, d], self.n, self.gs_factor)
                    for d in range(len(self.hierarchies))
                ],
                axis=1,
            )
            return aggregate_loss(per_col, self.loss_aggregate)
        if self.metric in ("entropy", "entropy_monotonic"):
            return sum(
                self.stats[d].entropy_total[self.nodes[:, d]] for d in range(len(self.hierarchies))
            )
        return np.full(len(self.nodes), float(self.n))  # discernibility: every class of size 1
