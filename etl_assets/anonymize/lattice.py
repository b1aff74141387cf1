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
class _Table:
    """Rows to group: level-0 codes (rows x q), sensitive codes and multiplicities."""

    codes: np.ndarray
    sens: dict[str, np.ndarray]
    weights: np.ndarray


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
        self._level_maps: dict[int, list[np.ndarray]] = {}
        for m_ in self.models:
            if m_.kind != "k-anonymity" and m_.attribute not in self.sensitive:
                raise ValueError(f"{m_.describe()}: sensitive attribute codes not given")
            if m_.kind == "t-closeness" and m_.distance == "hierarchical":
                # Sensitive codes must be the hierarchy's level-0 codes (``Hierarchy.encode``).
                if m_.hierarchy is None:
                    raise ValueError(f"{m_.describe()}: the sensitive hierarchy is not given")
                h_s = m_.hierarchy
                n_v = self.sensitive[m_.attribute].n_values
                if n_v > h_s.domain_size:
                    raise ValueError(f"{m_.describe()}: codes exceed the hierarchy's domain")
                self._level_maps[id(m_)] = [h_s.maps[lvl][:n_v] for lvl in range(1, h_s.levels)]
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
        self._base = _Table(
            self.codes, {k: v.codes for k, v in self.sensitive.items()}, self.weights
        )
        self._snaps: list[_Table] = []
        self._snap_nodes = np.zeros((256, len(self.hierarchies)), dtype=np.int64)

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

    def _snapshot_for(self, node: tuple[int, ...]) -> _Table | None:
        """The smallest cached class table of a predecessor of ``node`` (None: use the base)."""
        if not self._snaps:
            return None
        ok = np.nonzero(np.all(self._snap_nodes[: len(self._snaps)] <= node, axis=1))[0]
        if not len(ok):
            return None
        return min((self._snaps[i] for i in ok), key=lambda t: len(t.weights))

    def _table_classes(self, table: _Table | None, node: tuple[int, ...]) -> tuple[np.ndarray, int]:
        if table is None:
            return self.classes(node)
        return privacy.class_ids(
            [self.hierarchies[d].maps[lvl][table.codes[:, d]] for d, lvl in enumerate(node)],
            [self.cards[d][lvl] for d, lvl in enumerate(node)],
        )

    def _store_snapshot(
        self, node: tuple[int, ...], table: _Table | None, cls: np.ndarray, n_classes: int
    ) -> None:
        # Roll-up: a class table of this node lets every successor be grouped from fewer rows.
        base_rows = len(self.weights) if table is None else len(table.weights)
        if n_classes * 2 > base_rows or len(self._snaps) >= self._snap_nodes.shape[0]:
            return
        src = self._base if table is None else table
        names = sorted(src.sens)
        if names:
            key, m = privacy.class_ids(
                [cls] + [src.sens[x] for x in names],
                [n_classes] + [self.sensitive[x].n_values for x in names],
            )
        else:
            key, m = cls, n_classes
        first = np.empty(m, dtype=np.int64)
        first[key[::-1]] = np.arange(len(key))[::-1]
        weights = np.bincount(key, weights=src.weights, minlength=m)
        snap = _Table(src.codes[first], {x: src.sens[x][first] for x in names}, weights)
        self._snap_nodes[len(self._snaps)] = node
        self._snaps.append(snap)

    def violations(
        self, cls: np.ndarray, n_classes: int, table: _Table | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """Class sizes, per-class 'violates some model' mask, and records violating each model."""
        t = self._base if table is None else table
        sizes = np.bincount(cls, weights=t.weights, minlength=n_classes)
        bad = np.zeros(n_classes, dtype=bool)
        per_model: dict[str, int] = {}
        for m in self.models:
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
        table = self._snapshot_for(key)
        cls, n_classes = self._table_classes(table, key)
        sizes, bad, per_model = self.violations(cls, n_classes, table)
        suppressed = int(round(sizes[bad].sum()))
        res = NodeResult(key, suppressed <= self.max_outliers, suppressed, violations=per_model)
        if res.satisfied:
            res.score = self._score(key, cls, sizes, bad, table)
        self._store_snapshot(key, table, cls, n_classes)
        self._cache[key] = res
        return res

    def _score(
        self,
        node: tuple[int, ...],
        cls: np.ndarray,
        sizes: np.ndarray,
        bad: np.ndarray,
        table: _Table | None,
    ) -> float:
        t = self._base if table is None else table
        if self.metric == "discernibility":
            ok = sizes[~bad]
            n_s = float(sizes[bad].sum())
            return float((ok.astype(float) ** 2).sum() + n_s * self.n)
        if self.metric == "discernibility_monotonic":
            return float((sizes.astype(float) ** 2).sum())
        if self.metric == "entropy_monotonic":
            return float(sum(self.stats[d].entropy_total[lvl] for d, lvl in enumerate(node)))
        rows_bad = bad[cls]
        w_s = t.weights[rows_bad]
        c_all = t.codes[rows_bad]
        if self.metric == "loss":
            per_col = np.array(
                [
                    loss_dimension(self.stats[d], lvl, c_all[:, d], w_s, self.n, self.gs_factor)
                    for d, lvl in enumerate(node)
                ]
            )
            return float(aggregate_loss(per_col, self.loss_aggregate))
        total = 0.0
        for d, lvl in enumerate(node):
            st = self.stats[d]
            total += st.entropy_total[lvl] + suppression_entropy(st, lvl, c_all[:, d], w_s)
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


def _tie_key(res: NodeResult) -> tuple:
    return (round(res.score, 10), sum(res.node), res.node)


def optimal_search(problem: Problem) -> SearchResult:
    """Best-first search by lower bound with Flash-style path classification; oracle-equal optimum."""
    nodes = problem.nodes
    lb = np.round(problem.lower_bounds(), 10)
    order = np.lexsort((nodes.sum(axis=1), lb))
    status = np.zeros(len(nodes), dtype=np.int8)  # 0 unknown, 1 satisfied, -1 fails
    monotone = problem.monotone
    exact_lb = problem.metric == "entropy_monotonic" or (
        problem.max_outliers == 0 and problem.metric in ("loss", "entropy")
    )
    heights = np.array(problem.heights, dtype=np.int64)
    strides = np.ones(len(heights), dtype=np.int64)
    for d in range(len(heights) - 2, -1, -1):
        strides[d] = strides[d + 1] * heights[d + 1]
    # le[d][v] / ge[d][v]: nodes whose level d is <= / >= v (AND of q masks = predecessor set).
    le = [np.stack([nodes[:, d] <= v for v in range(h)]) for d, h in enumerate(problem.heights)]
    ge = [np.stack([nodes[:, d] >= v for v in range(h)]) for d, h in enumerate(problem.heights)]

    def cone(masks: list[np.ndarray], node: np.ndarray) -> np.ndarray:
        out = masks[0][node[0]].copy() if len(masks) else np.ones(len(nodes), dtype=bool)
        for d in range(1, len(masks)):
            out &= masks[d][node[d]]
        return out

    best: NodeResult | None = None
    closest: NodeResult | None = None
    evaluated = 0

    def check(i: int) -> NodeResult:
        nonlocal evaluated, closest
        res = problem.evaluate(nodes[i])
        evaluated += 1
        if res.satisfied:
            if monotone:
                status[cone(ge, nodes[i])] = 1
            status[i] = 1
        else:
            if closest is None or res.suppressed < closest.suppressed:
                closest = res
            if monotone:
                status[cone(le, nodes[i])] = -1
            status[i] = -1
        return res

    # Greedy path step per node: raise the level whose lower bound grows least (-1 at the top).
    nxt = np.full(len(nodes), -1, dtype=np.int64)
    nxt_lb = np.full(len(nodes), np.inf)
    ids = np.arange(len(nodes))
    for d in range(len(heights)):
        can = nodes[:, d] < heights[d] - 1
        cand = np.where(can, ids + strides[d], 0)
        better = can & (lb[cand] < nxt_lb)
        nxt = np.where(better, cand, nxt)
        nxt_lb = np.where(better, lb[cand], nxt_lb)
    nxt_list = nxt.tolist()

    def classify_path(i: int) -> None:
        path = [i]
        while nxt_list[path[-1]] >= 0:
            path.append(nxt_list[path[-1]])
        lo, hi = 0, len(path) - 1  # binary search for the lowest satisfying node on the path
        while lo <= hi and (exact_lb or status[i] == 0):
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
