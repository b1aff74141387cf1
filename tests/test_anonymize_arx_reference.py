"""ARX's own published reference results on Adult, reproduced by our search.

Every case below is copied from ARX's JUnit suite (``arx-deidentifier/arx``,
``src/test/java/org/deidentifier/arx/test/``): the configuration, the expected information loss
(``result.getGlobalOptimum().getHighestScore()``) and the expected optimal transformation. ARX's
test harness (``AbstractAnonymizationTest.getDataObject``) makes every attribute with an
``adult_hierarchy_*.csv`` file a quasi-identifier, except the sensitive one (set SENSITIVE only
when an l-diversity or t-closeness model is configured); transformations list the QIs in the
column order of ``adult.csv``. ARX asserts the loss exactly and only prints a note when an
equally good transformation differs; we assert both: our optimum has ARX's score, and ARX's
transformation is either ours or a tie (same score, satisfying the models).

ARX metric constructors map to ours as follows:

- ``createPrecomputedEntropyMetric(0.1, true)`` (``MetricMDNUEntropyPrecomputed``): monotonic
  non-uniform entropy, suppression ignored -> ``entropy_monotonic``;
- ``createPrecomputedEntropyMetric(0.1, false)`` (``MetricMDNUNMEntropyPrecomputed``):
  non-monotonic non-uniform entropy -> ``entropy``;
- ``createDiscernabilityMetric(true)`` (``MetricSDDiscernability``, DM*) ->
  ``discernibility_monotonic``.

Cases with ``practical`` = true use ARX's *practical monotonicity* (non-monotonic models treated
as monotonic to prune the search); when that heuristic misses the optimum, we keep the case as a
strict xfail. Models we do not implement (Grassberger entropy estimator, recursive (c,l)-diversity,
d-presence, ...) are skipped with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from etl_assets.anonymize import (
    PrivacyModel,
    Problem,
    encode_codes,
    exhaustive_search,
    from_csv,
    optimal_search,
)

ADULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "adult"
pytestmark = pytest.mark.skipif(
    not (ADULT / "adult.csv").exists(),
    reason=f"Adult benchmark data not found at {ADULT.resolve()}",
)

ENT_M = "entropy_monotonic"  # createPrecomputedEntropyMetric(0.1d, true)
ENT_NM = "entropy"  # createPrecomputedEntropyMetric(0.1d, false)
DM_STAR = "discernibility_monotonic"  # createDiscernabilityMetric(true)

K_FILE = "TestAnonymizationKAnonymity.java"
L_FILE = "TestAnonymizationLDiversity.java"
E_FILE = "TestAnonymizationEntropyLDiversity.java"
T_FILE = "TestAnonymizationTCloseness.java"
O_FILE = "TestAnonymizationOrderedDistanceTCloseness.java"

PRACTICAL_MISS = (
    "ARX practical monotonicity: the heuristic treats non-monotonic t-closeness with suppression "
    "as monotonic and prunes the optimum; ARX itself finds the lower loss when practical=false "
    "(same file, case {other}). We return the true optimum."
)


@dataclass(frozen=True)
class Case:
    """One ARX reference case on adult.csv."""

    source: str  # ARX test file and case index
    limit: float  # suppression limit
    metric: str  # our metric name
    models: tuple[dict, ...]  # our PrivacyModel kwargs
    sensitive: str | None  # ARX's sensitive attribute (excluded from the QIs)
    loss: float | None  # expected getHighestScore(); None: no solution
    transformation: tuple[int, ...] | None  # levels in adult.csv column order (QIs only)
    practical: bool = False
    skip: str | None = None
    xfail: str | None = None


def _k(k: int) -> dict:
    return {"kind": "k-anonymity", "k": k}


def _t(t: float, distance: str) -> dict:
    return {"kind": "t-closeness", "t": t, "distance": distance, "attribute": "occupation"}


def _el(l: int) -> dict:  # noqa: E741
    return {"kind": "l-diversity", "l": l, "variant": "entropy", "attribute": "occupation"}


GRASSBERGER = "ARX EntropyLDiversity with the Grassberger estimator: we implement Shannon only"

CASES = [
    # --- TestAnonymizationKAnonymity: all 9 attributes are QIs.
    Case(
        f"{K_FILE}#0", 0.04, ENT_M, (_k(5),), None, 255559.85455731067, (1, 0, 1, 1, 3, 2, 2, 0, 1)
    ),
    Case(
        f"{K_FILE}#1", 0.04, ENT_M, (_k(100),), None, 379417.3460570988, (1, 1, 1, 1, 3, 2, 2, 1, 1)
    ),
    Case(f"{K_FILE}#2", 0.0, ENT_M, (_k(5),), None, 407289.5388925293, (1, 2, 1, 1, 3, 2, 2, 1, 1)),
    Case(
        f"{K_FILE}#3", 0.0, ENT_M, (_k(100),), None, 453196.8932458743, (0, 4, 1, 1, 3, 2, 2, 1, 1)
    ),
    Case(
        f"{K_FILE}#4",
        0.04,
        ENT_M,
        (_k(5),),
        None,
        255559.85455731067,
        (1, 0, 1, 1, 3, 2, 2, 0, 1),
        True,
    ),
    Case(
        f"{K_FILE}#5",
        0.04,
        ENT_M,
        (_k(100),),
        None,
        379417.3460570988,
        (1, 1, 1, 1, 3, 2, 2, 1, 1),
        True,
    ),
    # --- TestAnonymizationLDiversity (Shannon entropy l-diversity on occupation).
    Case(
        f"{L_FILE}#0",
        0.04,
        ENT_NM,
        (_el(5),),
        "occupation",
        228878.2039109517,
        (1, 0, 1, 1, 2, 2, 2, 1),
    ),
    Case(f"{L_FILE}#1", 0.04, ENT_NM, (_el(100),), "occupation", None, None),
    Case(
        f"{L_FILE}#2",
        0.0,
        ENT_NM,
        (_el(5),),
        "occupation",
        324620.5269918692,
        (1, 1, 1, 1, 3, 2, 2, 1),
    ),
    Case(f"{L_FILE}#3", 0.0, ENT_NM, (_el(100),), "occupation", None, None),
    Case(
        f"{L_FILE}#4",
        0.04,
        ENT_NM,
        (_el(5),),
        "occupation",
        228878.2039109517,
        (1, 0, 1, 1, 2, 2, 2, 1),
        True,
    ),
    Case(f"{L_FILE}#5", 0.04, ENT_NM, (_el(100),), "occupation", None, None, True),
    # --- TestAnonymizationEntropyLDiversity.
    Case(
        f"{E_FILE}#0",
        0.04,
        ENT_NM,
        (_el(5),),
        "occupation",
        216092.124036387,
        (1, 0, 1, 0, 3, 2, 2, 0),
        skip=GRASSBERGER,
    ),
    Case(f"{E_FILE}#1", 0.04, ENT_NM, (_el(100),), "occupation", None, None),
    Case(
        f"{E_FILE}#2",
        0.0,
        ENT_NM,
        (_el(5),),
        "occupation",
        324620.5269918692,
        (1, 1, 1, 1, 3, 2, 2, 1),
        skip=GRASSBERGER,
    ),
    Case(
        f"{E_FILE}#3",
        0.05,
        ENT_NM,
        (_el(3),),
        "occupation",
        180347.4325366015,
        (0, 0, 1, 1, 2, 2, 2, 0),
        skip=GRASSBERGER,
    ),
    Case(
        f"{E_FILE}#4",
        0.04,
        ENT_NM,
        (_el(5),),
        "occupation",
        228878.2039109517,
        (1, 0, 1, 1, 2, 2, 2, 1),
        True,
    ),
    Case(f"{E_FILE}#5", 0.1, ENT_NM, (_el(100),), "occupation", None, None, True, skip=GRASSBERGER),
    # --- TestAnonymizationTCloseness (cases without a t-closeness model get ARX's "ugly hack":
    # hierarchical-distance 0.2-closeness on occupation with adult_hierarchy_occupation.csv).
    Case(
        f"{T_FILE}#0",
        0.04,
        DM_STAR,
        (_t(0.2, "equal"), _k(5)),
        "occupation",
        3.11880088e8,
        (1, 4, 1, 0, 3, 2, 2, 1),
    ),
    Case(
        f"{T_FILE}#1",
        0.04,
        DM_STAR,
        (_t(0.2, "equal"), _k(100)),
        "occupation",
        3.11880088e8,
        (1, 4, 1, 0, 3, 2, 2, 1),
    ),
    Case(
        f"{T_FILE}#2",
        0.04,
        ENT_M,
        (_k(5), _t(0.2, "hierarchical")),
        "occupation",
        377622.78458729305,
        (1, 4, 0, 0, 3, 2, 2, 1),
    ),
    Case(
        f"{T_FILE}#3",
        0.04,
        ENT_M,
        (_k(100), _t(0.2, "hierarchical")),
        "occupation",
        390765.61326019815,
        (1, 4, 1, 0, 3, 1, 2, 1),
    ),
    Case(
        f"{T_FILE}#4",
        0.0,
        DM_STAR,
        (_t(0.2, "equal"), _k(5)),
        "occupation",
        4.56853172e8,
        (1, 4, 1, 1, 3, 2, 2, 1),
    ),
    Case(
        f"{T_FILE}#5",
        0.0,
        DM_STAR,
        (_t(0.2, "equal"), _k(100)),
        "occupation",
        4.56853172e8,
        (1, 4, 1, 1, 3, 2, 2, 1),
    ),
    Case(
        f"{T_FILE}#6",
        0.0,
        ENT_M,
        (_k(5), _t(0.2, "hierarchical")),
        "occupation",
        398400.0741806447,
        (0, 4, 1, 1, 3, 2, 2, 1),
    ),
    Case(
        f"{T_FILE}#7",
        0.0,
        ENT_M,
        (_k(100), _t(0.2, "hierarchical")),
        "occupation",
        398400.0741806447,
        (0, 4, 1, 1, 3, 2, 2, 1),
    ),
    Case(
        f"{T_FILE}#8",
        0.04,
        DM_STAR,
        (_t(0.2, "equal"), _k(5)),
        "occupation",
        3.11880088e8,
        (1, 4, 1, 0, 3, 2, 2, 1),
        True,
    ),
    Case(
        f"{T_FILE}#9",
        0.04,
        DM_STAR,
        (_t(0.2, "equal"), _k(100)),
        "occupation",
        3.11880088e8,
        (1, 4, 1, 0, 3, 2, 2, 1),
        True,
    ),
    Case(
        f"{T_FILE}#10",
        0.04,
        ENT_M,
        (_k(5), _t(0.2, "hierarchical")),
        "occupation",
        390765.61326019815,
        (1, 4, 1, 0, 3, 1, 2, 1),
        True,
        xfail=PRACTICAL_MISS.format(other=2),
    ),
    Case(
        f"{T_FILE}#11",
        0.04,
        ENT_M,
        (_k(100), _t(0.2, "hierarchical")),
        "occupation",
        390765.61326019815,
        (1, 4, 1, 0, 3, 1, 2, 1),
        True,
    ),
    # --- TestAnonymizationOrderedDistanceTCloseness (occupation ordered as strings).
    Case(
        f"{O_FILE}#0",
        0.04,
        DM_STAR,
        (_t(0.2, "ordered"), _k(5)),
        "occupation",
        2712340.0,
        (0, 0, 1, 1, 2, 2, 2, 0),
    ),
    Case(
        f"{O_FILE}#1",
        0.04,
        DM_STAR,
        (_t(0.2, "ordered"), _k(100)),
        "occupation",
        1.9937246e7,
        (1, 0, 1, 2, 3, 2, 2, 1),
    ),
    Case(
        f"{O_FILE}#2",
        0.0,
        DM_STAR,
        (_t(0.1, "ordered"), _k(5)),
        "occupation",
        9.786802e7,
        (1, 1, 1, 2, 3, 2, 2, 1),
    ),
    Case(
        f"{O_FILE}#3",
        0.0,
        DM_STAR,
        (_t(0.2, "ordered"), _k(100)),
        "occupation",
        1.6231213e8,
        (1, 4, 1, 1, 1, 2, 2, 1),
    ),
    Case(
        f"{O_FILE}#4",
        0.04,
        DM_STAR,
        (_t(0.05, "ordered"), _k(5)),
        "occupation",
        2.01413138e8,
        (1, 4, 1, 0, 3, 2, 2, 0),
        True,
    ),
    Case(
        f"{O_FILE}#5",
        0.04,
        DM_STAR,
        (_t(0.2, "ordered"), _k(100)),
        "occupation",
        1.9937246e7,
        (1, 0, 1, 2, 3, 2, 2, 1),
        True,
    ),
]


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(ADULT / "adult.csv", sep=";", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def hierarchies(adult: pd.DataFrame) -> dict:
    return {c: from_csv(ADULT / f"adult_hierarchy_{c}.csv", name=c) for c in adult.columns}


def _problem(case: Case, adult: pd.DataFrame, hierarchies: dict) -> Problem:
    qis = [c for c in adult.columns if c != case.sensitive]
    hs = [hierarchies[q] for q in qis]
    codes = encode_codes(adult, qis, hs)
    models, sensitive = [], {}
    for m in case.models:
        kw = dict(m)
        if kw.get("distance") == "hierarchical":
            h = hierarchies[kw["attribute"]]
            kw["hierarchy"] = h
            sensitive[kw["attribute"]] = h.encode(adult[kw["attribute"]]).astype(np.int64)
        models.append(PrivacyModel(**kw))
    for m in models:
        if m.attribute is not None and m.attribute not in sensitive:
            # ARX orders string values with String.compareTo: code-point order, as sort=True.
            codes_s, _ = pd.factorize(adult[m.attribute], sort=True)
            sensitive[m.attribute] = codes_s.astype(np.int64)
    return Problem(hs, codes, models, sensitive, case.limit, case.metric)


def _params():
    for c in CASES:
        marks = []
        if c.skip:
            marks.append(pytest.mark.skip(reason=c.skip))
        if c.xfail:
            marks.append(pytest.mark.xfail(reason=c.xfail, strict=True))
        yield pytest.param(
            c, id=c.source.replace("TestAnonymization", "").replace(".java", ""), marks=marks
        )


@pytest.mark.parametrize("case", list(_params()))
def test_arx_reference_case(case: Case, adult: pd.DataFrame, hierarchies: dict) -> None:
    problem = _problem(case, adult, hierarchies)
    res = optimal_search(problem)
    if case.loss is None:
        assert res.best is None, f"ARX finds no solution, we found {res.best}"
        return
    assert res.best is not None, "ARX finds a solution, we found none"
    assert res.best.score == pytest.approx(case.loss, rel=1e-6), (
        f"loss {res.best.score!r} at {res.best.node}; ARX {case.loss!r} at {case.transformation}"
    )
    if res.best.node != case.transformation:
        # ARX's own test accepts an equally good transformation; check it is a true tie.
        theirs = problem.evaluate(case.transformation)
        assert theirs.satisfied, f"ARX's {case.transformation} does not satisfy the models here"
        assert theirs.score == pytest.approx(res.best.score, rel=1e-9), (
            f"ours {res.best.node} {res.best.score!r} vs ARX {case.transformation} {theirs.score!r}"
        )


@pytest.mark.parametrize("source", [f"{K_FILE}#0", f"{L_FILE}#0", f"{T_FILE}#2", f"{O_FILE}#0"])
def test_arx_reference_search_equals_oracle(
    source: str, adult: pd.DataFrame, hierarchies: dict
) -> None:
    case = next(c for c in CASES if c.source == source)
    fast = optimal_search(_problem(case, adult, hierarchies))
    oracle = exhaustive_search(_problem(case, adult, hierarchies))
    assert fast.best.node == oracle.best.node
    assert fast.best.score == pytest.approx(oracle.best.score, rel=1e-12)


# --- TestAnonymizationHeuristic.java (Adult, all 9 attributes as QIs): ARX's Lightning heuristic
# with a 1000-step limit, so ARX's transformation need not be optimal. Our metric must give ARX's
# value at ARX's transformation, and our optimum must be at least as good; ``optimal`` marks the
# cases where the heuristic did reach the optimum (then we must find the same one).
H_FILE = "TestAnonymizationHeuristic.java"
HEURISTIC = [
    # source, limit, metric, gs-factor, k, ARX loss, ARX transformation, optimal
    (f"{H_FILE}#0", 1.0, "loss", 0.5, 5, 0.22041192847984292, (0, 3, 0, 0, 2, 1, 1, 1, 0), True),
    (f"{H_FILE}#1", 0.04, ENT_NM, 0.5, 100, 400196.319223464, (1, 1, 1, 1, 2, 2, 2, 2, 1), False),
    (f"{H_FILE}#2", 1.0, "loss", 0.1, 5, 0.09257312971977383, (0, 3, 0, 0, 0, 0, 0, 0, 0), True),
    (f"{H_FILE}#3", 1.0, ENT_NM, 0.5, 100, 377248.23689620313, (0, 1, 1, 1, 2, 2, 2, 2, 0), False),
    (f"{H_FILE}#4", 0.04, "loss", 0.5, 5, 0.26611081915757495, (0, 3, 0, 1, 1, 1, 1, 2, 0), True),
]


@pytest.mark.parametrize(
    ("source", "limit", "metric", "gs", "k", "loss", "transformation", "optimal"),
    HEURISTIC,
    ids=[h[0].replace("TestAnonymization", "").replace(".java", "") for h in HEURISTIC],
)
def test_arx_heuristic_reference(
    source, limit, metric, gs, k, loss, transformation, optimal, adult, hierarchies
) -> None:
    hs = [hierarchies[c] for c in adult.columns]
    codes = encode_codes(adult, list(adult.columns), hs)
    problem = Problem(
        hs, codes, [PrivacyModel("k-anonymity", k=k)], {}, limit, metric, "geometric", gs
    )
    theirs = problem.evaluate(transformation)
    assert theirs.satisfied
    # ARX rounds each dimension to 10 decimals before aggregating: relative 1e-9 at most.
    assert theirs.score == pytest.approx(loss, rel=1e-6)
    best = optimal_search(problem).best
    assert best.score <= theirs.score * (1 + 1e-12)
    if optimal:
        assert best.node == transformation
        assert best.score == pytest.approx(loss, rel=1e-6)
    else:
        assert best.score < loss * (1 - 1e-3), "the heuristic was expected to miss the optimum"


# --- TestUtilityMetricsLoss.java (Adult, sensitive occupation): Loss with ARX's RANK aggregate
# (the per-QI losses sorted in descending order, compared lexicographically) for several
# gs-factors and suppression limits 100% / 5%. We do not optimize RANK (our search minimizes one
# number); we check the per-QI Loss vector at ARX's transformation, which pins down the Loss
# semantics: domain shares, gs-factor weighting of generalization vs. suppression, normalization.
U_FILE = "TestUtilityMetricsLoss.java"
_KH = (_k(5), _t(0.2, "hierarchical"))
_H = (_t(0.2, "hierarchical"),)
_K = (_k(5),)
_V0 = (0.8630926331, 0.838230697, 0.8357221006, 0.8169882633) + (0.7735229759,) * 4
_V4 = (1.0,) * 5 + (0.3077954048, 0.0458855513, 0.0458855513)
_V30 = (0.6778091018, 0.6746031746, 0.6657963446, 0.650273224, 0.6296296296, 0.5151515151)
_V30 += (0.2796355377, 0.0)
RANK_CASES = [
    # case, limit, gs-factor, models, ARX's sorted Loss vector, ARX transformation
    (0, 1.0, 0.5, _KH, _V0, (0, 3, 0, 0, 2, 1, 1, 0)),
    (1, 1.0, 0.5, _K, (0.297248193, 0.29678055) + (0.1297659306,) * 6, (0, 3, 0, 0, 1, 0, 0, 0)),
    (2, 1.0, 0.5, _H, _V0, (0, 3, 0, 0, 2, 1, 1, 0)),
    (4, 0.05, 0.5, _KH, _V4, (1, 4, 0, 0, 3, 1, 2, 1)),
    (8, 0.05, 0.5, _H, _V4, (1, 4, 0, 0, 3, 1, 2, 1)),
    (10, 1.0, 0.0, _KH, (0.0,) * 8, (0,) * 8),
    (11, 1.0, 0.0, _K, (0.0,) * 8, (0,) * 8),
    (14, 0.05, 0.0, _KH, (1.0,) * 5 + (0.2728756382, 0.0, 0.0), (1, 4, 0, 0, 3, 1, 2, 1)),
    (18, 0.05, 0.0, _H, (1.0,) * 5 + (0.2728756382, 0.0, 0.0), (1, 4, 0, 0, 3, 1, 2, 1)),
    (20, 1.0, 0.33, _KH, (0.6348915854,) + (0.6195185995,) * 7, (0, 1, 0, 0, 0, 0, 0, 0)),
    (21, 1.0, 0.33, _K, (0.2300344804,) + (0.1976148796,) * 7, (0, 1, 0, 0, 0, 0, 0, 0)),
    (
        24,
        0.05,
        0.33,
        _KH,
        (1.0,) * 5 + (0.2959226841,) + (0.0302844638,) * 2,
        (1, 4, 0, 0, 3, 1, 2, 1),
    ),
    (30, 1.0, 0.66, _KH, _V30, (0, 4, 1, 1, 3, 2, 2, 1)),
    (
        31,
        1.0,
        0.66,
        _K,
        (0.2366229645, 0.2359393534, 0.1843930011, 0.1821869476) + (0.0624295471,) * 4,
        (0, 3, 0, 0, 1, 1, 1, 0),
    ),
    (34, 0.05, 0.66, _KH, _V30, (0, 4, 1, 1, 3, 2, 2, 1)),
    (40, 1.0, 1.0, _KH, (0.0,) * 8, (1, 4, 0, 2, 3, 2, 2, 1)),
    (41, 1.0, 1.0, _K, (0.0,) * 8, (1, 4, 0, 2, 3, 2, 2, 0)),
    (44, 0.05, 1.0, _KH, (0.0,) * 8, (1, 4, 0, 2, 3, 2, 2, 1)),
]


@pytest.mark.parametrize(
    ("case_no", "limit", "gs", "models", "vector", "transformation"),
    RANK_CASES,
    ids=[f"UtilityMetricsLoss#{r[0]}" for r in RANK_CASES],
)
def test_arx_loss_vector_reference(
    case_no, limit, gs, models, vector, transformation, adult, hierarchies
) -> None:
    case = Case(f"{U_FILE}#{case_no}", limit, "loss", models, "occupation", None, None)
    problem = _problem(case, adult, hierarchies)
    problem.gs_factor = gs
    res = problem.evaluate(transformation)
    assert res.satisfied
    m = problem.metrics(transformation)
    ours = sorted((m[f"loss_{i}"] for i in range(len(transformation))), reverse=True)
    assert ours == pytest.approx(list(vector), abs=1e-9)
