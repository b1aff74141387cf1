"""Lattice structure, roll-up grouping and the search's path classification, against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_assets.anonymize import PrivacyModel, Problem, from_levels
from etl_assets.anonymize.lattice import Lattice
from etl_assets.anonymize.rollup import ClassTable, Grouper, Rollup, dense_ids
from etl_assets.anonymize.search import _BestFirst


def _partition(ids: np.ndarray) -> set[frozenset[int]]:
    """The rows grouped together, independent of how the groups are numbered."""
    groups: dict[int, set[int]] = {}
    for row, g in enumerate(ids.tolist()):
        groups.setdefault(g, set()).add(row)
    return {frozenset(g) for g in groups.values()}


def _hierarchy(domain: int, fanouts: list[int], name: str):
    """Leaves 0..domain-1; level l groups ``prod(fanouts[:l])`` consecutive leaves; then ``*``."""
    rows, width = [], 1
    levels = [[str(v) for v in range(domain)]]
    for f in fanouts:
        width *= f
        levels.append([f"{v // width}" for v in range(domain)])
    levels.append(["*"] * domain)
    for v in range(domain):
        rows.append([lv[v] for lv in levels])
    return from_levels(rows, name=name)


def _generalized(hs, codes: np.ndarray, node) -> np.ndarray:
    return np.stack([hs[d].maps[lvl][codes[:, d]] for d, lvl in enumerate(node)], axis=1)


def test_lattice_nodes_and_cones_match_brute_force() -> None:
    lat = Lattice([2, 3, 4])
    assert [tuple(n) for n in lat.nodes.tolist()] == list(
        itertools.product(range(2), range(3), range(4))
    )
    for i in (0, 7, 13, len(lat) - 1):
        node = lat.nodes[i]
        assert (lat.below(i) == (lat.nodes <= node).all(axis=1)).all()
        assert (lat.above(i) == (lat.nodes >= node).all(axis=1)).all()
    cost = np.random.default_rng(1).random(len(lat))
    steps = lat.cheapest_steps(cost)
    for i, j in enumerate(steps.tolist()):
        diff = lat.nodes - lat.nodes[i]
        succ = np.flatnonzero((diff.min(axis=1) >= 0) & (diff.sum(axis=1) == 1)).tolist()
        assert j == (min(succ, key=lambda k: cost[k]) if succ else -1)


def test_dense_ids_presence_and_hash_paths_agree() -> None:
    rng = np.random.default_rng(0)
    key = rng.integers(0, 50, 400)
    ids_small, m_small = dense_ids(key, 50)  # presence path (range < 4 x rows)
    ids_big, m_big = dense_ids(key * 10**9, 50 * 10**9)  # hash path
    assert m_small == m_big == len(np.unique(key))
    assert (
        _partition(ids_small)
        == _partition(ids_big)
        == _partition(np.unique(key, return_inverse=True)[1])
    )
    assert ids_small.max() == m_small - 1


def test_grouper_with_keys_beyond_int64_still_groups_exactly() -> None:
    # 5 columns of 10^4 leaves: the mixed-radix key range (10^20) does not fit 2^62.
    hs = [_hierarchy(10_000, [100], f"c{d}") for d in range(5)]
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 10_000, (300, 5))
    codes[150:] = codes[:150]  # every row twice
    # Two rows whose level-0 keys differ by exactly 2^64: int64 arithmetic would merge them.
    codes[0], codes[1] = (0, 0, 0, 0, 0), (1616, 955, 737, 6744, 1844)
    table = ClassTable([codes[:, d].copy() for d in range(5)], {}, np.ones(300))
    for node in [(0, 0, 0, 0, 0), (1, 0, 1, 0, 0), (2, 2, 0, 1, 2)]:
        cls, n = Grouper(hs).classes(table, node)
        expected = np.unique(_generalized(hs, codes, node), axis=0, return_inverse=True)[1]
        assert n == len(_partition(expected))
        assert _partition(cls) == _partition(expected.reshape(-1))


@st.composite
def tables(draw):
    n = draw(st.integers(1, 150))
    codes = np.array(
        [draw(st.lists(st.integers(0, dom - 1), min_size=n, max_size=n)) for dom in (12, 8, 5)]
    ).T
    sens = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    x = tuple(draw(st.integers(0, h - 1)) for h in (4, 3, 2))
    y = tuple(max(a, draw(st.integers(0, h - 1))) for a, h in zip(x, (4, 3, 2), strict=True))
    return codes, sens, x, y


HS = [_hierarchy(12, [2, 3], "a"), _hierarchy(8, [4], "b"), _hierarchy(5, [], "c")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_rolled_up_classes_equal_classes_from_every_row(case) -> None:
    codes, sens, x, y = case
    base = ClassTable([codes[:, d].copy() for d in range(3)], {"s": sens}, np.ones(len(sens)))
    grouper, rollup = Grouper(HS), Rollup(base, {"s": 3})
    cls_x, n_x = grouper.classes(base, x)
    rollup.store(x, base, cls_x, n_x)
    table = rollup.source(y)
    cls_y, n_y = grouper.classes(table, y)
    expected = np.unique(_generalized(HS, codes, y), axis=0, return_inverse=True)[1].reshape(-1)
    # Same number of classes, and the same class sizes and sensitive counts per class.
    assert n_y == len(np.unique(expected))
    got = sorted(
        tuple(
            np.bincount(table.sens["s"][cls_y == c], weights=table.weights[cls_y == c], minlength=3)
        )
        for c in range(n_y)
    )
    want = sorted(tuple(np.bincount(sens[expected == c], minlength=3)) for c in range(n_y))
    assert got == want
    if len(table) < len(base):  # a stored table is one of y's predecessors, and smaller
        assert table.weights.sum() == len(sens)


def test_a_stored_class_table_serves_its_successors_and_not_others() -> None:
    codes = np.repeat(np.arange(12)[:, None], 10, axis=0) % [12, 8, 5]
    base = ClassTable([codes[:, d].copy() for d in range(3)], {}, np.ones(len(codes)))
    grouper, rollup = Grouper(HS), Rollup(base, {})
    cls, n = grouper.classes(base, (1, 1, 0))
    rollup.store((1, 1, 0), base, cls, n)
    assert len(rollup.source((2, 1, 1))) == n < len(base)
    assert rollup.source((0, 2, 1)) is base  # (1, 1, 0) is not below (0, 2, 1)


def test_row_index_maps_every_record_to_its_deduplicated_row() -> None:
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 4, (200, 3))
    sens = rng.integers(0, 2, 200)
    p = Problem(HS, codes, [PrivacyModel("k-anonymity", k=2)], {"s": sens})
    assert len(p.weights) < 200 and p.weights.sum() == 200
    assert (p.codes[p.row_index] == codes).all()
    assert (p.sensitive["s"].codes[p.row_index] == sens).all()
    assert (np.bincount(p.row_index) == p.weights).all()


@pytest.mark.parametrize("exact", [True, False])
def test_path_classification_with_exact_bounds_settles_the_whole_path(exact: bool) -> None:
    rng = np.random.default_rng(11)
    df = pd.DataFrame(rng.integers(0, [12, 8, 5], (300, 3)), columns=["a", "b", "c"])
    limit = 0.0 if exact else 0.05
    p = Problem(HS, df.to_numpy(), [PrivacyModel("k-anonymity", k=4)], suppression_limit=limit)
    search = _BestFirst(p)
    assert search.exact_lb is exact
    start = int(search.order[0])
    search.classify_path(start)
    path = [start]
    while search.steps[path[-1]] >= 0:
        path.append(search.steps[path[-1]])
    truth = [p.evaluate(p.nodes[i]).satisfied for i in path]
    known = [int(search.status[i]) for i in path]
    assert search.status[start] != 0
    if exact:  # every node of the path is known, and known right
        assert known == [1 if t else -1 for t in truth]
    else:  # it stops once the start node is known; what it tagged is still right
        assert all(k == 0 or k == (1 if t else -1) for k, t in zip(known, truth, strict=True))
