"""The engine on UCI Adult (../shared/data/adult), verified independently with pycanon."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from etl_assets.anonymize import (
    AnonymizationSpec,
    PrivacyModel,
    Problem,
    anonymize_table,
    encode_codes,
    exhaustive_search,
    from_csv,
    optimal_search,
    verify_table,
)

ADULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "adult"
pytestmark = pytest.mark.skipif(
    not (ADULT / "adult.csv").exists(),
    reason=f"Adult benchmark data not found at {ADULT.resolve()}",
)


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(ADULT / "adult.csv", sep=";")


def _spec(
    df: pd.DataFrame, models: list[dict], limit: float, sensitive: str = "salary-class"
) -> AnonymizationSpec:
    cols = [
        {
            "name": c,
            "role": "quasi_identifier",
            "generalization": {"path": str(ADULT / f"adult_hierarchy_{c}.csv")},
        }
        for c in df.columns
        if c != sensitive
    ]
    cols.append({"name": sensitive, "role": "sensitive"})
    return AnonymizationSpec.from_dict(
        {"table": "adult", "columns": cols, "privacy_models": models, "suppression_limit": limit}
    )


def test_adult_k5_no_suppression_optimum(adult: pd.DataFrame) -> None:
    res = anonymize_table(adult, _spec(adult, [{"kind": "k-anonymity", "k": 5}], 0.0), seed=1)
    cols = [c for c in adult.columns if c != "salary-class"]
    assert [res.transformation[c] for c in cols] == [0, 4, 0, 2, 3, 2, 2, 1]
    assert res.suppressed == 0
    assert res.metrics["loss"] == pytest.approx(0.5915849773, abs=1e-8)


def test_adult_result_verified_by_pycanon(adult: pd.DataFrame) -> None:
    pycanon = pytest.importorskip("pycanon")
    from pycanon import anonymity

    models = [
        {"kind": "k-anonymity", "k": 5},
        {"kind": "l-diversity", "l": 3, "attribute": "occupation"},
        {"kind": "t-closeness", "t": 0.3, "attribute": "occupation"},
    ]
    spec = _spec(adult.drop(columns=["salary-class"]), models, 0.04, sensitive="occupation")
    res = anonymize_table(adult.drop(columns=["salary-class"]), spec, seed=1)
    out = res.tables["adult"]
    qis = spec.quasi_identifiers
    assert res.suppressed <= int(0.04 * len(adult))
    assert anonymity.k_anonymity(out, qis) >= 5
    assert anonymity.l_diversity(out, qis, ["occupation"]) >= 3
    assert anonymity.t_closeness(out, qis, ["occupation"]) <= 0.3 + 1e-9
    del pycanon


@pytest.mark.parametrize(
    ("models", "limit", "metric"),
    [
        ([{"kind": "k-anonymity", "k": 10}], 0.02, "loss"),
        ([{"kind": "l-diversity", "l": 3, "variant": "entropy"}], 0.05, "loss"),
        ([{"kind": "k-anonymity", "k": 3}, {"kind": "t-closeness", "t": 0.25}], 0.05, "entropy"),
        ([{"kind": "l-diversity", "l": 2}], 0.01, "discernibility"),
    ],
)
def test_adult_sample_search_equals_oracle(adult: pd.DataFrame, models, limit, metric) -> None:
    df = adult.sample(3000, random_state=0)
    qis = ["sex", "age", "race", "marital-status", "education"]
    hs = [from_csv(ADULT / f"adult_hierarchy_{c}.csv") for c in qis]
    codes = encode_codes(df, qis, hs)
    sens = {"occupation": pd.factorize(df["occupation"], sort=True)[0]}
    pms = [
        PrivacyModel(**{"attribute": "occupation", **m})
        if m["kind"] != "k-anonymity"
        else PrivacyModel(**m)
        for m in models
    ]
    fast = optimal_search(Problem(hs, codes, pms, sens, limit, metric))
    oracle = exhaustive_search(Problem(hs, codes, pms, sens, limit, metric))
    assert (fast.best is None) == (oracle.best is None)
    if oracle.best is not None:
        assert fast.best.node == oracle.best.node
        assert fast.best.score == pytest.approx(oracle.best.score)
        assert fast.evaluated <= oracle.evaluated


def test_verify_table_reports_each_model(adult: pd.DataFrame) -> None:
    df = adult.drop(columns=["salary-class"])
    models = [
        {"kind": "k-anonymity", "k": 5},
        {"kind": "t-closeness", "t": 0.3, "attribute": "occupation"},
    ]
    spec = _spec(df, models, 0.04, sensitive="occupation")
    res = anonymize_table(df, spec, seed=1)
    checks = verify_table(res.tables["adult"], spec, reference=df)
    assert [c.satisfied for c in checks] == [True, True]
    raw = verify_table(df, spec)
    assert not raw[0].satisfied and "k-anonymity k=5" in raw[0].message()
