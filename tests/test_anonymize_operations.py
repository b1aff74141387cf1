"""Operations: pseudonyms, perturbation, permutation, anatomization, hierarchies, reproducibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etl_assets.anonymize import (
    AnonymizationSpec,
    HierarchyError,
    SpecError,
    anatomize,
    anonymize_table,
    dates,
    from_tree,
    intervals,
    permute,
    perturb,
    prefix_mask,
    pseudonymize,
)


def test_pseudonyms_are_keyed_stable_and_join() -> None:
    a = pseudonymize(pd.Series([1, 2, 1, None]), b"k1")
    b = pseudonymize(pd.Series([2, 1]), b"k1")
    assert a[0] == a[2] == b[1] and a[1] == b[0] and a[0] != a[1]
    assert pd.isna(a[3])  # nulls stay null
    assert pseudonymize(pd.Series([1]), b"k2")[0] != a[0]
    with pytest.raises(ValueError, match="secret"):
        pseudonymize(pd.Series([1]), b"")


def test_perturbation_respects_range_and_rounding() -> None:
    rng = np.random.default_rng(0)
    x = pd.Series(np.arange(1000), name="x")
    y = perturb(
        x, rng, "laplace", epsilon=0.5, sensitivity=1, round_base=5, clip_min=0, clip_max=999
    )
    assert y.min() >= 0 and y.max() <= 999 and (y % 5 == 0).all()
    assert y.dtype == x.dtype
    z = perturb(x.astype(float), np.random.default_rng(0), "gaussian", scale=0.0)
    assert np.allclose(z, x)
    with pytest.raises(ValueError, match="epsilon"):
        perturb(x, rng, "laplace")


def test_permutation_within_classes_keeps_each_class_multiset() -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat([0, 1, 2], [3, 4, 5])
    vals = np.arange(12)
    out = permute(vals, rng, groups)
    for g in range(3):
        assert sorted(out[groups == g]) == sorted(vals[groups == g])
    assert sorted(permute(vals, rng)) == list(vals)


def test_anatomy_groups_are_l_diverse() -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"age": range(30), "disease": list("aabbccdde") * 3 + ["f", "g", "h"]})
    qit, st = anatomize(df, ["age"], "disease", 3, rng)
    assert len(qit) == 30 and set(qit.columns) == {"group_id", "age"}
    per_group = st.groupby("group_id").agg(
        distinct=("disease", "nunique"), n=("count", "sum"), mx=("count", "max")
    )
    assert (per_group["distinct"] >= 3).all()
    assert (per_group["mx"] * 3 <= per_group["n"]).all()
    assert st["count"].sum() == 30
    with pytest.raises(ValueError, match="most frequent"):
        anatomize(pd.DataFrame({"q": [1, 2, 3], "s": ["a", "a", "b"]}), ["q"], "s", 2, rng)


def test_generalizers() -> None:
    h = intervals(pd.Series([21, 27, 35], name="age"), widths=[5, 10])
    assert h.generalize(h.encode(pd.Series([27])), 1)[0] == "[25, 30)"
    assert h.generalize(h.encode(pd.Series([27])), 2)[0] == "[20, 30)"
    b = intervals(pd.Series([5, 30, 70], name="age"), bins=[[0, 18, 65]])
    assert list(b.generalize(b.encode(pd.Series([5, 30, 70])), 1)) == [
        "[0, 18)",
        "[18, 65)",
        "[65, inf)",
    ]
    d = dates(
        pd.Series(pd.to_datetime(["2024-02-10", "2024-05-01"]), name="d"),
        ["month", "quarter", "year"],
    )
    codes = d.encode(pd.Series(pd.to_datetime(["2024-02-10"])))
    assert [d.generalize(codes, lvl)[0] for lvl in (1, 2, 3, 4)] == [
        "2024-02",
        "2024-Q1",
        "2024",
        "*",
    ]
    p = prefix_mask(pd.Series(["10115", "10117"], name="zip"), keep=[3, 1])
    assert p.generalize(p.encode(pd.Series(["10117"])), 1)[0] == "101**"
    t = from_tree({"flu": "infection", "cold": "infection", "cancer": None, "infection": None})
    assert t.levels == 3 and t.generalize(t.encode(pd.Series(["cancer"])), 1)[0] == "cancer"
    with pytest.raises(HierarchyError, match="not in hierarchy"):
        t.encode(pd.Series(["measles"], name="diagnosis"))


def _spec() -> AnonymizationSpec:
    return AnonymizationSpec.from_dict(
        {
            "table": "p",
            "columns": [
                {"name": "id", "role": "identifier", "pseudonymize": True},
                {
                    "name": "age",
                    "role": "quasi_identifier",
                    "generalization": {"kind": "intervals", "widths": [10, 20]},
                },
                {
                    "name": "income",
                    "perturbation": {"kind": "laplace", "scale": 100.0, "clip_min": 0},
                },
                {"name": "dx", "role": "sensitive", "permute": "class"},
            ],
            "privacy_models": [{"kind": "k-anonymity", "k": 3}],
            "suppression_limit": 0.1,
        }
    )


def _people(n: int = 200, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "age": rng.integers(18, 80, n),
            "income": rng.integers(0, 10**5, n),
            "dx": rng.choice(list("abcde"), n),
        }
    )


def test_the_secret_key_decides_the_noise() -> None:
    df = _people()
    a = anonymize_table(df, _spec(), secret=b"s")
    b = anonymize_table(df, _spec(), secret=b"s")
    c = anonymize_table(df, _spec(), secret=b"another key")
    pd.testing.assert_frame_equal(a.tables["p"], b.tables["p"])
    assert not a.tables["p"]["income"].equals(c.tables["p"]["income"])
    assert (a.tables["p"]["income"] >= 0).all()


def test_an_unchanged_record_gets_the_same_noise_whatever_else_changes() -> None:
    """Keyed per record: reordering, adding and changing other records leave a record's noise
    alone, and changing the record itself draws fresh noise."""
    df = _people()
    spec = AnonymizationSpec.from_dict(
        {"table": "p", "columns": [
            {"name": "id"}, {"name": "age"}, {"name": "dx"},
            {"name": "income", "perturbation": {"kind": "laplace", "scale": 500.0}},
        ]}
    )  # fmt: skip
    first = anonymize_table(df, spec, secret=b"k").tables["p"].set_index("id")["income"]
    changed = df.sample(frac=1.0, random_state=3).reset_index(drop=True)  # another order
    changed = pd.concat([changed, _people(20, seed=9).assign(id=lambda d: d.id + 1000)])
    changed.loc[changed.id == 7, "age"] += 1  # record 7 changes
    second = anonymize_table(changed, spec, secret=b"k").tables["p"].set_index("id")["income"]
    same = [i for i in range(200) if i != 7]
    pd.testing.assert_series_equal(first.loc[same], second.loc[same])
    assert first.loc[7] != second.loc[7]
    noise = first - df.set_index("id")["income"]
    assert 0 < noise.abs().mean() < 5000  # it is noise, of about the declared scale


def test_keyed_laplace_and_normal_have_their_distributions() -> None:
    from etl_assets.anonymize.keyed import KeyedRandom

    rand = KeyedRandom(np.arange(200_000, dtype=np.uint64), b"key")
    lap = rand.laplace("x", 2.0)
    assert abs(lap.mean()) < 0.05 and abs(np.abs(lap).mean() - 2.0) < 0.05  # E|X| = b
    z = rand.normal("y")
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02
    u, v = rand.uniform("a"), rand.uniform("b")
    assert 0 < u.min() and u.max() < 1 and abs(np.corrcoef(u, v)[0, 1]) < 0.01


def test_spec_errors_name_the_field() -> None:
    with pytest.raises(SpecError, match=r"columns\[0\]: unknown keys \['colour'\]"):
        AnonymizationSpec.from_dict({"table": "t", "columns": [{"name": "a", "colour": 1}]})
    with pytest.raises(SpecError, match="suppression_limit"):
        AnonymizationSpec.from_dict({"table": "t", "suppression_limit": 4})
    with pytest.raises(SpecError, match="needs a generalization"):
        AnonymizationSpec.from_dict(
            {
                "table": "t",
                "columns": [{"name": "a", "role": "quasi_identifier"}],
                "privacy_models": [{"kind": "k-anonymity", "k": 2}],
            }
        )


def test_anatomization_through_engine() -> None:
    df = pd.DataFrame({"age": range(12), "dx": list("abcd") * 3})
    spec = AnonymizationSpec.from_dict(
        {
            "table": "h",
            "columns": [{"name": "dx", "role": "sensitive"}],
            "anatomization": {"attribute": "dx", "l": 2},
        }
    )
    res = anonymize_table(df, spec, seed=1)
    assert set(res.tables) == {"h_qit", "h_st"}
    assert "dx" not in res.tables["h_qit"].columns
