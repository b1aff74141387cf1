"""Generalization hierarchies, encoded as integer lookup tables so the lattice search is vectorized.

A hierarchy is a table with one row per domain value: column 0 is the value itself, the last column
is the fully generalized value (``*``). Encoding a data column yields one level-0 code per row and a
``(levels x domain)`` table mapping level-0 codes to the code of their ancestor at each level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = "*"


class HierarchyError(ValueError):
    """A hierarchy or a column does not fit together (user-fixable)."""


@dataclass
class Hierarchy:
    """A materialized generalization hierarchy: ``table[i, l]`` is domain value i at level l."""

    table: np.ndarray  # (domain, levels) of str
    name: str = ""
    # Filled by _encode_table:
    maps: np.ndarray = field(init=False, repr=False)  # (levels, domain) int32: level-0 code -> code
    labels: list[np.ndarray] = field(init=False, repr=False)  # per level: code -> label
    leaves: list[np.ndarray] = field(init=False, repr=False)  # per level: code -> #domain leaves

    def __post_init__(self) -> None:
        table = np.asarray(self.table, dtype=object)
        if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] == 0:
            raise HierarchyError(f"hierarchy {self.name!r}: expected a non-empty table of levels")
        table = table.astype(str)
        values, first = np.unique(table[:, 0], return_index=True)
        if len(values) != len(table):
            table = table[np.sort(first)]  # duplicate leaves: keep the first row of each
        self.table = table
        levels = table.shape[1]
        self.maps = np.empty((levels, len(table)), dtype=np.int32)
        self.labels, self.leaves = [], []
        for lvl in range(levels):
            codes, labels = pd.factorize(table[:, lvl], sort=False)
            self.maps[lvl] = codes
            self.labels.append(np.asarray(labels, dtype=object))
            self.leaves.append(np.bincount(codes, minlength=len(labels)).astype(np.int64))
        # Every value must have a single parent: codes at level l determine codes at level l+1.
        for lvl in range(levels - 1):
            pairs = np.unique(self.maps[lvl] * np.int64(len(table)) + self.maps[lvl + 1])
            if len(pairs) != len(self.labels[lvl]):
                raise HierarchyError(
                    f"hierarchy {self.name!r}: a value at level {lvl} has two different parents "
                    f"at level {lvl + 1}; expected a tree"
                )
        self._index = pd.Index(table[:, 0])

    @property
    def levels(self) -> int:
        """Number of levels including level 0 (the original value)."""
        return self.table.shape[1]

    @property
    def domain_size(self) -> int:
        """Number of leaves (original values) the hierarchy covers."""
        return self.table.shape[0]

    def encode(self, column: pd.Series) -> np.ndarray:
        """Map a data column to level-0 codes (int32); values missing from the hierarchy raise.

        Each distinct value is turned into its key text once (a 1M-record column of ~40k dates
        made 1M Python strings before)."""
        inverse, uniques = pd.factorize(column, use_na_sentinel=True)
        if (inverse < 0).any():
            _as_keys(column)  # raises: quasi-identifiers have no nulls
        keys = _as_keys(pd.Series(uniques, name=column.name))
        unique_codes = self._index.get_indexer(keys)
        if (unique_codes < 0).any():
            # Counts only: the values are restricted data and this message reaches the run log.
            missing = unique_codes < 0
            raise HierarchyError(
                f"column {column.name!r}: {len(pd.unique(keys[missing]))} distinct values "
                f"({int(missing[inverse].sum())} records) are not in hierarchy {self.name!r};"
                " expected every value of the column as a row of the hierarchy"
            )
        return unique_codes.astype(np.int32)[inverse]

    def shares(self, level: int) -> np.ndarray:
        """Per level-0 code: ARX's normalized generalization loss (leaves-1)/(domain-1)."""
        leaves = self.leaves[level][self.maps[level]]
        if self.domain_size <= 1:
            return np.zeros(self.domain_size)
        return (leaves - 1) / (self.domain_size - 1)

    def generalize(self, codes: np.ndarray, level: int) -> np.ndarray:
        """Labels (object array) of level-0 codes generalized to ``level``."""
        return self.labels[level][self.maps[level][codes]]

    def up(self, src: int, dst: int) -> np.ndarray:
        """Lookup from codes at level ``src`` to codes at level ``dst`` (``dst >= src``)."""
        out = np.zeros(len(self.labels[src]), dtype=np.int32)
        out[self.maps[src]] = self.maps[dst]
        return out


def _as_keys(column: pd.Series) -> np.ndarray:
    """String keys for hierarchy lookup; integral floats print without ``.0``."""
    if pd.api.types.is_float_dtype(column) and column.notna().all():
        if (column == np.round(column)).all():
            column = column.astype(np.int64)
    if column.isna().any():
        raise HierarchyError(
            f"column {column.name!r}: {int(column.isna().sum())} empty values; expected "
            "quasi-identifiers without nulls (fill or drop them in the cleaning rules)"
        )
    return column.astype(str).to_numpy(dtype=object)


# ---------------------------------------------------------------------------- constructors


def from_csv(path: str | Path, sep: str = ";", name: str | None = None) -> Hierarchy:
    """Load an ARX-style hierarchy file: one row per value, level 0 first, ``*`` last."""
    path = Path(path)
    if not path.exists():
        raise HierarchyError(f"hierarchy file {str(path)!r} does not exist")
    df = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False)
    return Hierarchy(df.to_numpy(), name=name or path.stem)


def from_levels(
    levels: Sequence[Sequence[str]] | Sequence[Mapping[str, str]], name: str = ""
) -> Hierarchy:
    """Build from rows ``[[value, l1, ..., '*'], ...]`` or from one ``{child: parent}`` per level."""
    if len(levels) and isinstance(levels[0], Mapping):
        steps: Sequence[Mapping[str, str]] = levels  # type: ignore[assignment]
        rows = [[str(v)] for v in steps[0]]
        for step in steps:
            for row in rows:
                if row[-1] not in step and str(row[-1]) not in step:
                    raise HierarchyError(
                        f"hierarchy {name!r}: {row[-1]!r} has no parent at level {len(row)}"
                    )
                row.append(str(step.get(row[-1], step.get(str(row[-1])))))
        return Hierarchy(np.array(rows, dtype=object), name=name)
    rows = [list(map(str, r)) for r in levels]
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise HierarchyError(f"hierarchy {name!r}: rows have different lengths {sorted(widths)}")
    return Hierarchy(np.array(rows, dtype=object), name=name)


def from_tree(tree: Mapping[str, str | None], name: str = "") -> Hierarchy:
    """Build from ``{value: parent}`` (roots map to None or ``*``); shallow leaves are padded."""
    parent = {str(k): (None if v is None else str(v)) for k, v in tree.items()}
    children = set(parent.values())
    leaves = [v for v in parent if v not in children]
    chains = []
    for leaf in leaves:
        chain, node, seen = [leaf], parent.get(leaf), {leaf}
        while node is not None and node != ROOT:
            if node in seen:
                raise HierarchyError(f"hierarchy {name!r}: cycle at {node!r}")
            seen.add(node)
            chain.append(node)
            node = parent.get(node)
        chain.append(ROOT)
        chains.append(chain)
    height = max(len(c) for c in chains)
    rows = [[c[0]] * (height - len(c)) + c for c in chains]  # repeat the leaf at the bottom
    return Hierarchy(np.array(rows, dtype=object), name=name)


def intervals(
    column: pd.Series,
    widths: Sequence[float] | None = None,
    bins: Sequence[Sequence[float]] | None = None,
) -> Hierarchy:
    """Numeric hierarchy over the column's distinct values: fixed-width intervals or given bin edges.

    ``widths=[5, 10, 20]`` gives levels ``[20, 25)`` → ``[20, 30)`` → ``[20, 40)`` → ``*``;
    ``bins=[[0, 18, 65, 120], ...]`` gives one level per edge list. Widths should nest (each a
    multiple of the previous) and bin edges should be coarsened by dropping edges, so each value
    has a single parent.
    """
    values = np.unique(_parsed(column, pd.to_numeric, "numbers").dropna().to_numpy())
    if widths is None and bins is None:
        raise HierarchyError(f"column {column.name!r}: intervals need 'widths' or 'bins'")
    rows = [[_fmt(v) for v in values]]
    for w in widths or []:
        if w <= 0:
            raise HierarchyError(f"column {column.name!r}: interval width must be > 0, got {w}")
        lo = np.floor(values / w) * w
        rows.append([f"[{_fmt(a)}, {_fmt(a + w)})" for a in lo])
    for edges in bins or []:
        edges = np.sort(np.asarray(edges, dtype=float))
        idx = np.searchsorted(edges, values, side="right") - 1
        labels = []
        for i in idx:
            lo = "-inf" if i < 0 else _fmt(edges[i])
            hi = "inf" if i + 1 >= len(edges) else _fmt(edges[i + 1])
            labels.append(f"[{lo}, {hi})")
        rows.append(labels)
    rows.append([ROOT] * len(values))
    return Hierarchy(np.array(rows, dtype=object).T, name=str(column.name))


def dates(column: pd.Series, levels: Sequence[str] = ("month", "quarter", "year")) -> Hierarchy:
    """Date hierarchy over distinct values: truncation to day, week, month, quarter or year."""
    uniq = pd.Series(pd.unique(column.dropna()))
    uts = pd.Series(_parsed(uniq.rename(column.name), pd.to_datetime, "dates"))
    rows = [uniq.astype(str).tolist()]
    for lvl in levels:
        if lvl == "day":
            rows.append(uts.dt.strftime("%Y-%m-%d").tolist())
        elif lvl == "week":
            iso = uts.dt.isocalendar()
            rows.append((iso.year.astype(str) + "-W" + iso.week.astype(str).str.zfill(2)).tolist())
        elif lvl == "month":
            rows.append(uts.dt.strftime("%Y-%m").tolist())
        elif lvl == "quarter":
            rows.append((uts.dt.year.astype(str) + "-Q" + uts.dt.quarter.astype(str)).tolist())
        elif lvl == "year":
            rows.append(uts.dt.strftime("%Y").tolist())
        else:
            raise HierarchyError(
                f"column {column.name!r}: date level {lvl!r}; expected day, week, month, quarter, year"
            )
    rows.append([ROOT] * len(uniq))
    return Hierarchy(np.array(rows, dtype=object).T, name=str(column.name))


def prefix_mask(column: pd.Series, keep: Sequence[int] | None = None, mask: str = "*") -> Hierarchy:
    """String masking: level i keeps the first ``keep[i]`` characters and masks the rest.

    Default ``keep`` removes one character per level (``12345`` → ``1234*`` → ... → ``*****``).
    """
    uniq = pd.Series(pd.unique(_as_keys(column.dropna())), dtype=object)
    width = int(uniq.str.len().max()) if len(uniq) else 0
    if keep is None:
        keep = list(range(width - 1, 0, -1))
    rows = [uniq.tolist()]
    for n in keep:
        rows.append(
            (uniq.str.slice(0, int(n)).str.pad(width, side="right", fillchar=mask)).tolist()
        )
    rows.append([ROOT] * len(uniq))
    return Hierarchy(np.array(rows, dtype=object).T, name=str(column.name))


def _parsed(column: pd.Series, parse, what: str) -> pd.Series:
    """``parse(column)``; what does not parse raises a count, never the values (restricted)."""
    out = parse(column, errors="coerce")
    unparsed = pd.isna(out) & column.notna()
    if unparsed.any():
        raise HierarchyError(
            f"column {column.name!r}: {int(unparsed.sum())} values are not {what}; expected "
            f"a column of {what} for this generalization"
        )
    return out


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def build(column: pd.Series, config: Mapping | Hierarchy | str | Path) -> Hierarchy:
    """Build the hierarchy a column spec describes (see ``spec.Generalization``)."""
    if isinstance(config, Hierarchy):
        return config
    if isinstance(config, (str, Path)):
        return from_csv(config, name=str(column.name))
    kind = config.get("kind", "hierarchy")
    name = str(column.name)
    if kind == "hierarchy":
        if config.get("path"):
            return from_csv(config["path"], sep=config.get("sep", ";"), name=name)
        if config.get("tree"):
            return from_tree(config["tree"], name=name)
        if config.get("levels"):
            return from_levels(config["levels"], name=name)
        raise HierarchyError(f"column {name!r}: hierarchy needs 'path', 'tree' or 'levels'")
    if kind == "intervals":
        return intervals(column, widths=config.get("widths"), bins=config.get("bins"))
    if kind == "date":
        return dates(column, config.get("date_levels") or ("month", "quarter", "year"))
    if kind == "prefix":
        return prefix_mask(column, keep=config.get("keep"))
    raise HierarchyError(
        f"column {name!r}: generalization kind {kind!r}; expected hierarchy, intervals, date, prefix"
    )
