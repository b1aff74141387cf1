"""Full-domain generalization lattice and the optimal search over it.

A node assigns one generalization level to each quasi-identifier. ``optimal_search`` returns the
node with minimal information loss among those satisfying every privacy model with at most
``floor(limit * N)`` suppressed records (records in violating classes are suppressed, as in ARX).

The search is a best-first search by lower bound (as in ARX's Flash/OLA with bounds):

- each metric has a lower bound computable per node without grouping the data (for Loss and
  non-uniform entropy: the value ignoring suppression, which is a sum/mean of per-column terms);
  nodes are visited in increasing lower bound and the search stops once the bound exceeds the
  best loss found (suppression only ever increases these metrics, so the bound is valid);
- predictive tagging: when a node fails and the models are monotone under the suppression limit
  (k-anonymity, distinct l-diversity; any model with a 0% limit), all its predecessors fail too
  and are never evaluated.

``exhaustive_search`` evaluates every node and is the test oracle.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import privacy
from .hierarchy import Hierarchy
from .metrics import ColumnStats, aggregate_loss, column_stats, node_metrics
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
class SearchResult:
    """Outcome of a lattice search."""

    best: NodeResult | None
    evaluated: int
    nodes: int
    closest: NodeResult | None = None  # the failing node with fewest suppressions (for messages)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class _Sensitive:
    codes: np.ndarray  # per deduplicated row
    n_values: int
    global_dist: np.ndarray


class Problem:
    """A table encoded for the search: deduplicated rows, per-level codes, metric lookups."""

    def __init__(
        self,
        hierarchies: Sequence[Hierarchy],
        codes: np.ndarray,
        models: Sequence[PrivacyModel] = (),
        sensitive: dict[str, np.ndarray] | None = None,
        suppression_limit: float = 0.0,
        metric: str = "loss",
        loss_aggregate: str = "geometric",
    ) -> None:
        self.hierarchies = list(hierarchies)
        self.models = list(models)
        self.metric = metric
        self.loss_aggregate = loss_aggregate
        codes = np.asarray(codes, dtype=np.int64).reshape(len(codes), len(self.hierarchies))
        self.n = len(codes)
        self.max_outliers = int(np.floor(suppression_limit * self.n + 1e-9))
        sensitive = sensitive or {}
        # Deduplicate rows over QIs and sensitive attributes: every evaluation works on this.
        sens_names = sorted(sensitive)
        sens_raw = [np.asarray(sensitive[s], dtype=np.int64) for s in sens_names]
        cols = [codes[:, d] for d in range(codes.shape[1])] + sens_raw
        cards = [h.domain_size for h in self.hierarchies] + [
            int(s.max()) + 1 if len(s) else 1 for s in sens_raw
        ]
        if self.n:
            row_ids, n_distinct = privacy.class_ids(cols, cards)
            first = np.zeros(n_distinct, dtype=np.int64)
            first[row_ids[::-1]] = np.arange(self.n)[::-1]
            self.weights = np.bincount(row_ids, minlength=n_distinct).astype(np.int64)
        else:
            first, self.weights = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        self.codes = codes[first]
        self.sensitive = {}
        for name, raw in zip(sens_names, sens_raw, strict=True):
            m = int(raw.max()) + 1 if len(raw) else 1
            g = np.bincount(raw, minlength=m).astype(float)
            self.sensitive[name] = _Sensitive(raw[first], m, g / max(g.sum(), 1.0))
        for m_ in self.models:
            if m_.kind != "k-anonymity" and m_.attribute not in self.sensitive:
                raise ValueError(f"{m_.describe()}: sensitive attribute codes not given")
        # Per column, per level: generalized codes of every deduplicated row, and cardinalities.
        self.level_codes = [
            [h.maps[lvl][self.codes[:, d]].astype(np.int64) for lvl in range(h.levels)]
            for d, h in enumerate(self.hierarchies)
        ]
        self.cards = [[len(lab) for lab in h.labels] for h in self.hierarchies]
        self.stats: list[ColumnStats] = [
            column_stats(h, self.codes[:, d], self.weights) for d, h in enumerate(self.hierarchies)
        ]
        self.heights = [h.levels for h in self.hierarchies]
        self.nodes = (
            np.array(list(itertools.product(*[range(x) for x in self.heights])), dtype=np.int64)
            if self.hierarchies
            else np.zeros((1, 0), dtype=np.int64)
        )
        self._cache: dict[tuple[int, ...], NodeResult] = {}
        self._cache_hit = False

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
        return privacy.class_ids(
            [self.level_codes[d][lvl] for d, lvl in enumerate(node)],
            [self.cards[d][lvl] for d, lvl in enumerate(node)],
        )

    def violations(
        self, cls: np.ndarray, n_classes: int
    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """Class sizes, per-class 'violates some model' mask, and records violating each model."""
        sizes = np.bincount(cls, weights=self.weights, minlength=n_classes)
        bad = np.zeros(n_classes, dtype=bool)
        per_model: dict[str, int] = {}
        for m in self.models:
            if m.kind == "k-anonymity":
                v = sizes < m.k
            else:
                s = self.sensitive[m.attribute]
                counts = privacy.distribution_matrix(
                    cls, n_classes, s.codes, s.n_values, self.weights
                )
                if m.kind == "l-diversity":
                    v = (
                        privacy.distinct_l_violations(counts, m.l)
                        if m.variant == "distinct"
                        else privacy.entropy_l_violations(counts, m.l)
                    )
                else:
                    v = privacy.t_violations(counts, s.global_dist, m.t, m.distance)
            per_model[m.describe()] = int(sizes[v].sum())
            bad |= v
        return sizes, bad, per_model

    def evaluate(self, node: Sequence[int]) -> NodeResult:
        """Check the models on ``node`` and, if satisfied, compute the optimized metric."""
        key = tuple(int(x) for x in node)
        hit = self._cache.get(key)
        self._cache_hit = hit is not None
        if hit is not None:
            return hit
        cls, n_classes = self.classes(key)
        sizes, bad, per_model = self.violations(cls, n_classes)
        suppressed = int(sizes[bad].sum())
        res = NodeResult(key, suppressed <= self.max_outliers, suppressed, violations=per_model)
        if res.satisfied:
            res.score = self._score(key, cls, sizes, bad)
        self._cache[key] = res
        return res

    def _score(
        self, node: tuple[int, ...], cls: np.ndarray, sizes: np.ndarray, bad: np.ndarray
    ) -> float:
        rows_bad = bad[cls]
        if self.metric == "discernibility":
            ok = sizes[~bad]
            n_s = float(sizes[bad].sum())
            return float((ok.astype(float) ** 2).sum() + n_s * self.n)
        w_s = self.weights[rows_bad]
        n_s = float(w_s.sum())
        if self.metric == "loss":
            per_col = np.empty(len(node))
            for d, lvl in enumerate(node):
                st = self.stats[d]
                c_s = self.codes[rows_bad, d]
                per_col[d] = (
                    st.loss_total[lvl] - float((st.shares[lvl][c_s] * w_s).sum()) + n_s
                ) / self.n
            return float(aggregate_loss(per_col, self.loss_aggregate))
        total = 0.0
        for d, lvl in enumerate(node):
            st = self.stats[d]
            c_s = self.codes[rows_bad, d]
            total += st.entropy_total[lvl] + float(
                ((st.log_root[c_s] - st.log_ratio[lvl][c_s]) * w_s).sum()
            )
        return total

    def metrics(self, node: Sequence[int]) -> dict[str, float]:
        """All ARX metrics of ``node`` (records in violating classes counted as suppressed)."""
        cls, n_classes = self.classes(node)
        sizes, bad, _ = self.violations(cls, n_classes)
        return node_metrics(
            self.stats, node, self.codes, self.weights, bad[cls], sizes, ~bad, self.loss_aggregate
        )

    def lower_bounds(self) -> np.ndarray:
        """Per lattice node: a lower bound of the optimized metric valid under suppression."""
        if self.n == 0 or not self.hierarchies:
            return np.zeros(len(self.nodes))
        if self.metric == "loss":
            per_col = np.stack(
                [
                    self.stats[d].loss_total[self.nodes[:, d]] / self.n
                    for d in range(len(self.hierarchies))
                ],
                axis=1,
            )
            return aggregate_loss(per_col, self.loss_aggregate)
        if self.metric == "entropy":
            return sum(
                self.stats[d].entropy_total[self.nodes[:, d]] for d in range(len(self.hierarchies))
            )
        return np.full(len(self.nodes), float(self.n))  # discernibility: every class of size 1


def _tie_key(res: NodeResult) -> tuple:
    return (round(res.score, 10), sum(res.node), res.node)


def optimal_search(problem: Problem) -> SearchResult:
    """Best-first search by lower bound with Flash-style path classification; oracle-equal optimum."""
    nodes = problem.nodes
    lb = np.round(problem.lower_bounds(), 10)
    order = np.lexsort((nodes.sum(axis=1), lb))
    status = np.zeros(len(nodes), dtype=np.int8)  # 0 unknown, 1 satisfied, -1 fails
    monotone = problem.monotone
    exact_lb = problem.max_outliers == 0 and problem.metric in ("loss", "entropy")
    heights = np.array(problem.heights, dtype=np.int64)
    strides = np.ones(len(heights), dtype=np.int64)
    for d in range(len(heights) - 2, -1, -1):
        strides[d] = strides[d + 1] * heights[d + 1]
    best: NodeResult | None = None
    closest: NodeResult | None = None
    evaluated = 0

    def check(i: int) -> NodeResult:
        nonlocal evaluated, closest
        res = problem.evaluate(nodes[i])
        evaluated += 1
        if res.satisfied:
            if monotone:
                status[np.all(nodes >= nodes[i], axis=1)] = 1
            status[i] = 1
        else:
            if closest is None or res.suppressed < closest.suppressed:
                closest = res
            if monotone:
                status[np.all(nodes <= nodes[i], axis=1)] = -1
            status[i] = -1
        return res

    def classify_path(i: int) -> None:
        # Path from node i to the top, each step raising the level whose bound grows least.
        path, cur = [i], nodes[i].copy()
        while True:
            cand = np.nonzero(cur < heights - 1)[0]
            if not len(cand):
                break
            nxt = [int(path[-1] + strides[d]) for d in cand]
            j = min(nxt, key=lambda x: (lb[x], x))
            cur = nodes[j]
            path.append(j)
        lo, hi = 0, len(path) - 1  # binary search for the lowest satisfying node on the path
        while lo <= hi and status[i] == 0:
            mid = (lo + hi) // 2
            if status[path[mid]] == 0:
                check(path[mid])
            if status[path[mid]] == 1:
                hi = mid - 1
            else:
                lo = mid + 1

    for i in order:
        if best is not None and lb[i] > round(best.score, 10):
            break
        if status[i] == -1:
            continue
        if status[i] == 0 and monotone:
            classify_path(int(i))
            if status[i] == -1:
                continue
        if status[i] == 1 and exact_lb:
            res = NodeResult(tuple(int(x) for x in nodes[i]), True, 0, float(lb[i]))
        else:
            res = problem.evaluate(nodes[i])
            if not problem._cache_hit:
                evaluated += 1
            if not res.satisfied:
                if closest is None or res.suppressed < closest.suppressed:
                    closest = res
                continue
        if best is None or _tie_key(res) < _tie_key(best):
            best = res
    if best is not None and exact_lb:
        best = problem.evaluate(best.node)
    if best is None:
        top = problem.evaluate(nodes[-1])
        closest = top if closest is None or top.suppressed <= closest.suppressed else closest
    return SearchResult(best, evaluated, len(nodes), closest)


def exhaustive_search(problem: Problem) -> SearchResult:
    """Evaluate every node; the reference the optimized search must match."""
    best: NodeResult | None = None
    closest: NodeResult | None = None
    for node in problem.nodes:
        res = problem.evaluate(node)
        if res.satisfied:
            if best is None or _tie_key(res) < _tie_key(best):
                best = res
        elif closest is None or res.suppressed < closest.suppressed:
            closest = res
    return SearchResult(best, len(problem.nodes), len(problem.nodes), closest)


def _closest(problem: Problem) -> NodeResult:
    return problem.evaluate(problem.nodes[-1])


def encode_codes(
    df: pd.DataFrame, columns: Sequence[str], hierarchies: Sequence[Hierarchy]
) -> np.ndarray:
    """(rows x q) level-0 codes of ``columns`` in their hierarchies."""
    if not columns:
        return np.zeros((len(df), 0), dtype=np.int64)
    return np.stack([h.encode(df[c]) for c, h in zip(columns, hierarchies, strict=True)], axis=1)
