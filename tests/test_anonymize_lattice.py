"""Lattice search, metrics and privacy checks: exact small tables and hypothesis properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_assets.anonymize import (
    AnonymizationSpec,
    PrivacyModel,
    PrivacyModelUnsatisfiable,
    Problem,
    anonymize_table,
    check_k_anonymity,
    check_l_diversity,
    check_t_closeness,
    encode_codes,
    exhaustive_search,
    from_levels,
    from_tree,
    optimal_search,
)

AGE = from_levels(
    [[str(a), f"{a // 10 * 10}-{a // 10 * 10 + 9}", "*"] for a in range(20, 60)], name="age"
)
ZIP = from_levels(
    [[z, z[:2] + "*", "*"] for z in ("1301", "1302", "1401", "1402", "1501")], name="zip"
)
SEX = from_tree({"M": "*", "F": "*"}, name="sex")


def test_hierarchy_loss_share_is_arx_domain_share() -> None:
    # Level 1 of ZIP: "13*" covers 2 of 5 leaves -> (2-1)/(5-1); root -> 1.
    assert ZIP.shares(1)[0] == pytest.approx(0.25)
    assert ZIP.shares(2).tolist() == [1.0] * 5
    assert ZIP.shares(0).tolist() == [0.0] * 5


def test_loss_entropy_discernibility_on_exact_table() -> None:
    df = pd.DataFrame({"zip": ["1301", "1302", "1401", "1402"], "sex": ["M", "M", "F", "F"]})
    p = Problem(
        [ZIP, SEX],
        encode_codes(df, ["zip", "sex"], [ZIP, SEX]),
        [PrivacyModel("k-anonymity", k=2)],
        loss_aggregate="arithmetic",
    )
    m = p.metrics((1, 0))
    # zip: every record in a 2-leaf group of a 5-leaf domain -> 0.25; sex unchanged -> 0.
    assert m["loss"] == pytest.approx(0.125)
    assert m["discernibility"] == 2**2 + 2**2
    # Non-uniform entropy: each zip value 1/4 of the records, its group 2/4 -> log2(2) per record.
    assert m["entropy"] == pytest.approx(4.0)
    assert m["suppressed"] == 0 and m["min_class_size"] == 2
    # (0, 0): all classes of size 1 violate k=2 and count as suppressed: loss 1 per cell.
    m0 = p.metrics((0, 0))
    assert m0["suppressed"] == 4 and m0["loss"] == pytest.approx(1.0)
    assert m0["discernibility"] == 4 * 4


def test_geometric_mean_matches_arx_formula() -> None:
    df = pd.DataFrame({"zip": ["1301", "1302", "1401", "1402"], "sex": ["M", "M", "F", "F"]})
    p = Problem([ZIP, SEX], encode_codes(df, ["zip", "sex"], [ZIP, SEX]))
    m = p.metrics((1, 1))
    assert m["loss"] == pytest.approx(((1.25) * (2.0)) ** 0.5 - 1)


def test_checks_on_exact_table() -> None:
    df = pd.DataFrame({"q": ["a", "a", "a", "b", "b", "b"], "s": ["x", "y", "x", "x", "x", "x"]})
    assert check_k_anonymity(df, ["q"], 3).satisfied
    assert not check_k_anonymity(df, ["q"], 4).satisfied
    r = check_l_diversity(df, ["q"], "s", 2)
    assert not r.satisfied and r.violating_records == 3 and r.achieved == 1
    # Global: x 5/6, y 1/6. Class a: x 2/3, y 1/3 -> EMD 1/6; class b: x 1 -> 1/6.
    t = check_t_closeness(df, ["q"], "s", 0.17)
    assert t.satisfied and t.achieved == pytest.approx(1 / 6)
    assert not check_t_closeness(df, ["q"], "s", 0.16).satisfied


def test_ordered_distance_t_closeness() -> None:
    df = pd.DataFrame({"q": [0, 0, 1, 1], "s": [1, 2, 3, 4]})
    # Class 0 holds the two lowest values: cumulative diffs 1/4, 1/2, 1/4 over m-1 = 3.
    r = check_t_closeness(df, ["q"], "s", 0.5, distance="ordered")
    assert r.achieved == pytest.approx(1.0 / 3)


@st.composite
def small_tables(draw):
    n = draw(st.integers(4, 120))
    ages = draw(st.lists(st.integers(20, 59), min_size=n, max_size=n))
    zips = draw(
        st.lists(st.sampled_from(["1301", "1302", "1401", "1402", "1501"]), min_size=n, max_size=n)
    )
    sexes = draw(st.lists(st.sampled_from(["M", "F"]), min_size=n, max_size=n))
    sens = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    k = draw(st.integers(2, 5))
    limit = draw(st.sampled_from([0.0, 0.05, 0.2]))
    metric = draw(st.sampled_from(["loss", "entropy", "discernibility"]))
    extra = draw(st.sampled_from(["none", "distinct", "entropy", "t"]))
    return (
        pd.DataFrame({"age": ages, "zip": zips, "sex": sexes, "s": sens}),
        k,
        limit,
        metric,
        extra,
    )


def _models(k: int, extra: str) -> list[PrivacyModel]:
    models = [PrivacyModel("k-anonymity", k=k)]
    if extra in ("distinct", "entropy"):
        models.append(PrivacyModel("l-diversity", l=2, variant=extra, attribute="s"))
    elif extra == "t":
        models.append(PrivacyModel("t-closeness", t=0.4, attribute="s"))
    return models


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_tables())
def test_search_equals_exhaustive_oracle(case) -> None:
    df, k, limit, metric, extra = case
    hs = [AGE, ZIP, SEX]
    codes = encode_codes(df, ["age", "zip", "sex"], hs)
    sens = {"s": pd.factorize(df["s"], sort=True)[0]}
    mk = lambda: Problem(hs, codes, _models(k, extra), sens, limit, metric)  # noqa: E731
    fast, oracle = optimal_search(mk()), exhaustive_search(mk())
    if oracle.best is None:
        assert fast.best is None
    else:
        assert fast.best is not None
        assert fast.best.node == oracle.best.node
        assert fast.best.score == pytest.approx(oracle.best.score)


@settings(max_examples=40, deadline=None)
@given(small_tables())
def test_output_satisfies_models(case) -> None:
    df, k, limit, metric, extra = case
    spec = AnonymizationSpec.from_dict(
        {
            "table": "t",
            "columns": [
                {
                    "name": "age",
                    "role": "quasi_identifier",
                    "generalization": {"kind": "intervals", "widths": [10, 20]},
                },
                {
                    "name": "zip",
                    "role": "quasi_identifier",
                    "generalization": {"kind": "prefix", "keep": [2]},
                },
                {
                    "name": "sex",
                    "role": "quasi_identifier",
                    "generalization": {"tree": {"M": "*", "F": "*"}},
                },
                {"name": "s", "role": "sensitive"},
            ],
            "privacy_models": [vars(m) for m in _models(k, extra)],
            "suppression_limit": limit,
            "metric": metric,
        }
    )
    try:
        res = anonymize_table(df, spec, seed=7)
    except PrivacyModelUnsatisfiable:
        return
    out = res.tables["t"]
    assert len(out) + res.suppressed == len(df)
    assert res.suppressed <= int(np.floor(limit * len(df) + 1e-9))
    if len(out):
        assert check_k_anonymity(out, spec.quasi_identifiers, k).satisfied
        if extra in ("distinct", "entropy"):
            assert check_l_diversity(out, spec.quasi_identifiers, "s", 2, extra).satisfied


def test_unsatisfiable_says_which_model_and_by_how_much() -> None:
    df = pd.DataFrame({"sex": ["M", "F", "F"], "s": ["a", "a", "b"]})
    spec = AnonymizationSpec.from_dict(
        {
            "table": "t",
            "columns": [
                {
                    "name": "sex",
                    "role": "quasi_identifier",
                    "generalization": {"tree": {"M": "*", "F": "*"}},
                }
            ],
            "privacy_models": [{"kind": "k-anonymity", "k": 4}],
        }
    )
    with pytest.raises(
        PrivacyModelUnsatisfiable, match=r"k-anonymity k=4: .*3 records \(100.00%\).*limit is 0%"
    ):
        anonymize_table(df, spec, seed=1)
