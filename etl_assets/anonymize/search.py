"""The optimal search over the generalization lattice, and the exhaustive search it must equal.

``optimal_search`` returns the node with minimal information loss among those satisfying every
privacy model with at most ``floor(limit * N)`` suppressed records (records in violating classes
are suppressed, as in ARX). It is a best-first search by lower bound (as in ARX's Flash/OLA with
bounds):

- each metric has a lower bound computable per node without grouping the data (for Loss and
  non-uniform entropy: the value ignoring suppression, which is a sum/mean of per-column terms);
  nodes are visited in increasing lower bound and the search stops once the bound exceeds the
  best loss found (suppression only ever increases these metrics, so the bound is valid);
- predictive tagging: when a node fails and the models are monotone under the suppression limit
  (k-anonymity, distinct l-diversity; any model with a 0% limit), all its predecessors fail too
  and are never evaluated; when it passes, all its successors pass. An unknown node is classified
  by a binary search on a path from it to the top of the lattice (Flash).

``exhaustive_search`` evaluates every node and is the test oracle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .evaluation import NodeResult, Problem

_UNKNOWN, _PASSES, _FAILS = 0, 1, -1
_SCAN = 256  # nodes looked at per step when skipping nodes known to fail


@dataclass
class SearchResult:
    """Outcome of a lattice search."""

    best: NodeResult | None
    evaluated: int
    nodes: int
    closest: NodeResult | None = None  # the failing node with fewest suppressions (for messages)
    metrics: dict[str, float] = field(default_factory=dict)


def _tie_key(res: NodeResult) -> tuple:
    return (round(res.score, 10), sum(res.node), res.node)


class _BestFirst:
    """One optimal search: the status of every node, the best node and the closest failure."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.lattice = problem.lattice
        self.lb = np.round(problem.lower_bounds(), 10)
        nodes = self.lattice.nodes
        self.order = np.lexsort((nodes.sum(axis=1), self.lb))  # = the tie order of equal bounds
        self.status = np.zeros(len(nodes), dtype=np.int8)
        self.monotone = problem.monotone
        # A satisfying node scores exactly its bound: always for monotonic entropy, and for Loss
        # and entropy when no record may be suppressed.
        self.exact_lb = problem.metric == "entropy_monotonic" or (
            problem.max_outliers == 0 and problem.metric in ("loss", "entropy")
        )
        self.steps = self.lattice.cheapest_steps(self.lb).tolist() if self.monotone else []
        self.best: NodeResult | None = None
        self.closest: NodeResult | None = None
        self.evaluated = 0

    def _failed(self, res: NodeResult) -> None:
        if self.closest is None or res.suppressed < self.closest.suppressed:
            self.closest = res

    def check(self, i: int) -> None:
        """Evaluate node ``i`` and tag what monotonicity implies."""
        res = self.problem.evaluate(self.lattice.nodes[i])
        self.evaluated += 1
        if res.satisfied:
            self.status[self.lattice.above(i)] = _PASSES
        else:
            self._failed(res)
            self.status[self.lattice.below(i)] = _FAILS

    def classify_path(self, i: int) -> None:
        """Binary search for the lowest satisfying node on the cheapest path from ``i`` upward.

        Without exact bounds the search stops once ``i`` is tagged. With exact bounds a satisfying
        node needs no evaluation, so the work is proving nodes fail: the search goes on to the
        highest failing node of the path, whose predecessors are the most the path can tag.
        """
        path = [i]
        while self.steps[path[-1]] >= 0:
            path.append(self.steps[path[-1]])
        lo, hi = 0, len(path) - 1
        while lo <= hi and (self.exact_lb or self.status[i] == _UNKNOWN):
            mid = (lo + hi) // 2
            if self.status[path[mid]] == _UNKNOWN:
                self.check(path[mid])
            if self.status[path[mid]] == _PASSES:
                hi = mid - 1
            else:
                lo = mid + 1

    def _next_open(self, pos: int) -> int:
        """The first position from ``pos`` in bound order whose node is not known to fail."""
        n = len(self.order)
        if pos < n and self.status[self.order[pos]] != _FAILS:
            return pos
        while pos < n:
            is_open = self.status[self.order[pos : pos + _SCAN]] != _FAILS
            j = int(is_open.argmax())
            if is_open[j]:
                return pos + j
            pos += _SCAN
        return n

    def _visit(self, i: int) -> None:
        if self.status[i] == _UNKNOWN and self.monotone:
            self.classify_path(i)
            if self.status[i] == _FAILS:
                return
        if self.status[i] == _PASSES and self.exact_lb:
            res = NodeResult(tuple(self.lattice.nodes[i].tolist()), True, 0, float(self.lb[i]))
        else:
            node = self.lattice.nodes[i]
            self.evaluated += not self.problem.has_result(node)
            res = self.problem.evaluate(node)
            if not res.satisfied:
                self._failed(res)
                return
        if self.best is None or _tie_key(res) < _tie_key(self.best):
            self.best = res

    def run(self) -> SearchResult:
        pos = self._next_open(0)
        while pos < len(self.order):
            i = int(self.order[pos])
            if self.best is not None and self.lb[i] > round(self.best.score, 10):
                break
            self._visit(i)
            pos = self._next_open(pos + 1)
        best, closest = self.best, self.closest
        if best is not None and self.exact_lb:
            best = self.problem.evaluate(best.node)
        if best is None:
            top = self.problem.evaluate(self.lattice.nodes[-1])
            closest = top if closest is None or top.suppressed <= closest.suppressed else closest
        return SearchResult(best, self.evaluated, len(self.lattice), closest)


def optimal_search(problem: Problem) -> SearchResult:
    """Best-first search by lower bound with Flash-style path classification; oracle-equal optimum."""
    return _BestFirst(problem).run()


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
