"""The full-domain generalization lattice: its nodes and the cones above and below a node.

A node assigns one generalization level to each quasi-identifier. Node ``i`` is the mixed-radix
number of its levels (the last quasi-identifier varies fastest, as ``itertools.product``), so
raising level ``d`` by one adds ``strides[d]`` to the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np


class Lattice:
    """Nodes ``(levels per quasi-identifier)`` in mixed-radix order, with cone masks."""

    def __init__(self, heights: Sequence[int]) -> None:
        self.heights = np.array(heights, dtype=np.int64).reshape(-1)
        q = len(self.heights)
        if q:
            self.nodes = np.ascontiguousarray(
                np.indices(tuple(self.heights), dtype=np.int64).reshape(q, -1).T
            )
        else:
            self.nodes = np.zeros((1, 0), dtype=np.int64)
        self.strides = np.ones(q, dtype=np.int64)
        for d in range(q - 2, -1, -1):
            self.strides[d] = self.strides[d + 1] * self.heights[d + 1]

    def __len__(self) -> int:
        return len(self.nodes)

    @cached_property
    def _masks(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        # le[d][v] / ge[d][v]: nodes whose level d is <= / >= v; a cone is the AND over d.
        le = [
            np.stack([self.nodes[:, d] <= v for v in range(h)]) for d, h in enumerate(self.heights)
        ]
        ge = [
            np.stack([self.nodes[:, d] >= v for v in range(h)]) for d, h in enumerate(self.heights)
        ]
        return le, ge

    def _cone(self, masks: list[np.ndarray], i: int) -> np.ndarray:
        node = self.nodes[i]
        if not len(masks):
            return np.ones(len(self.nodes), dtype=bool)
        out = masks[0][node[0]].copy()
        for d in range(1, len(masks)):
            out &= masks[d][node[d]]
        return out

    def below(self, i: int) -> np.ndarray:
        """Mask of node ``i`` and every node it generalizes (its predecessors)."""
        return self._cone(self._masks[0], i)

    def above(self, i: int) -> np.ndarray:
        """Mask of node ``i`` and every node that generalizes it (its successors)."""
        return self._cone(self._masks[1], i)

    def cheapest_steps(self, cost: np.ndarray) -> np.ndarray:
        """Per node, the direct successor of lowest ``cost`` (ties: the first QI); -1 at the top."""
        step = np.full(len(self.nodes), -1, dtype=np.int64)
        step_cost = np.full(len(self.nodes), np.inf)
        ids = np.arange(len(self.nodes))
        for d in range(len(self.heights)):
            can = self.nodes[:, d] < self.heights[d] - 1
            cand = np.where(can, ids + self.strides[d], 0)
            better = can & (cost[cand] < step_cost)
            step = np.where(better, cand, step)
            step_cost = np.where(better, cost[cand], step_cost)
        return step
