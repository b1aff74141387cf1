"""Class tables and their roll-up: a node's classes grouped from a finer node's classes.

Hierarchies are trees, so every class of a node is a union of classes of each of its
predecessors. A node can therefore be grouped from a predecessor's *class table* — one
representative row per class with the number of records behind it — instead of from every row:
ARX's roll-up of frequency sets. ``Rollup`` keeps the class tables worth keeping and hands out the
smallest one a node can be grouped from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import privacy
from .hierarchy import Hierarchy

_MAX_KEY = 2**62  # mixed-radix keys stay below this; wider products are densified in steps


@dataclass
class ClassTable:
    """Rows to group: level-0 codes per quasi-identifier, sensitive codes and multiplicities."""

    columns: list[np.ndarray]  # per QI: int64 level-0 code of each row
    sens: dict[str, np.ndarray]  # per sensitive attribute: int64 code of each row
    weights: np.ndarray  # records behind each row

    def __len__(self) -> int:
        return len(self.weights)

    def take(self, rows: np.ndarray, weights: np.ndarray) -> ClassTable:
        """The table of ``rows`` (one per class) carrying ``weights``."""
        return ClassTable(
            [c[rows] for c in self.columns], {k: v[rows] for k, v in self.sens.items()}, weights
        )


def dense_ids(key: np.ndarray, n_keys: int) -> tuple[np.ndarray, int]:
    """Dense ids ``0..m-1`` of int64 ``key`` values in ``[0, n_keys)``, and ``m``."""
    if n_keys <= 4 * len(key) + 1024:
        present = np.flatnonzero(np.bincount(key, minlength=n_keys))
        remap = np.empty(n_keys, dtype=np.int64)
        remap[present] = np.arange(len(present), dtype=np.int64)
        return remap[key], len(present)
    ids, uniq = pd.factorize(key)
    return ids.astype(np.int64, copy=False), len(uniq)


def first_rows(ids: np.ndarray, n_ids: int) -> np.ndarray:
    """Index of the first row of each id."""
    first = np.empty(n_ids, dtype=np.int64)
    first[ids[::-1]] = np.arange(len(ids) - 1, -1, -1, dtype=np.int64)
    return first


class Grouper:
    """Groups the rows of a class table at a lattice node into dense class ids."""

    def __init__(self, hierarchies: Sequence[Hierarchy]) -> None:
        self.maps = [[m.astype(np.int64) for m in h.maps] for h in hierarchies]
        self.cards = [[len(lab) for lab in h.labels] for h in hierarchies]

    def classes(self, table: ClassTable, node: Sequence[int]) -> tuple[np.ndarray, int]:
        """Class id per row of ``table`` and the number of classes at ``node``."""
        used = [(d, lvl) for d, lvl in enumerate(node) if self.cards[d][lvl] > 1]
        n = len(table)
        if not used or n == 0:
            return np.zeros(n, dtype=np.int64), int(n > 0)
        n_keys = 1
        for d, lvl in used:
            n_keys *= self.cards[d][lvl]
        if n_keys >= _MAX_KEY:
            return privacy.class_ids(
                [self.maps[d][lvl][table.columns[d]] for d, lvl in used],
                [self.cards[d][lvl] for d, lvl in used],
            )
        # key = sum of generalized code * radix; the radix is folded into each small lookup.
        key, radix = None, 1
        for d, lvl in used:
            lut = self.maps[d][lvl] if radix == 1 else self.maps[d][lvl] * radix
            if key is None:
                key = lut[table.columns[d]]
            else:
                key += lut[table.columns[d]]
            radix *= self.cards[d][lvl]
        return dense_ids(key, n_keys)


class Rollup:
    """Cache of class tables by lattice node; a node is grouped from its smallest predecessor's."""

    def __init__(self, base: ClassTable, n_values: dict[str, int], capacity: int = 256) -> None:
        self.base = base
        self._n_values = n_values  # sensitive attribute -> number of codes
        self._tables: list[ClassTable] = []
        self._nodes = np.zeros((capacity, len(base.columns)), dtype=np.int64)
        self._sizes = np.zeros(capacity, dtype=np.int64)

    def source(self, node: Sequence[int]) -> ClassTable:
        """The smallest cached class table of a predecessor of ``node`` (or every row)."""
        count = len(self._tables)
        if not count:
            return self.base
        below = np.all(self._nodes[:count] <= np.asarray(node), axis=1)
        if not below.any():
            return self.base
        return self._tables[int(np.where(below, self._sizes[:count], _MAX_KEY).argmin())]

    def store(
        self, node: Sequence[int], source: ClassTable, cls: np.ndarray, n_classes: int
    ) -> None:
        """Keep the class table of ``node`` if it is at most half the rows it was grouped from."""
        count = len(self._tables)
        if n_classes * 2 > len(source) or count >= len(self._nodes):
            return
        names = sorted(source.sens)
        if names:  # rows of a class that differ in a sensitive value stay apart
            key, m = privacy.class_ids(
                [cls] + [source.sens[x] for x in names],
                [n_classes] + [self._n_values[x] for x in names],
            )
        else:
            key, m = cls, n_classes
        weights = np.bincount(key, weights=source.weights, minlength=m)
        self._tables.append(source.take(first_rows(key, m), weights))
        self._nodes[count] = node
        self._sizes[count] = m
