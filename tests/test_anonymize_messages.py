"""Errors of the anonymization stage reach the run log and the UI: they count, never quote data."""

from __future__ import annotations

import pandas as pd
import pytest

from etl_assets.anonymize import (
    AnonymizationSpec,
    HierarchyError,
    anonymize_table,
    dates,
    from_tree,
    intervals,
)

SECRET = "Jane-Doe-1970"


def test_value_missing_from_a_hierarchy_is_counted_not_quoted() -> None:
    h = from_tree({"flu": "infection", "cold": "infection", "infection": None}, name="diagnosis")
    col = pd.Series(["flu", SECRET, SECRET, "measles"], name="diagnosis")
    with pytest.raises(HierarchyError) as exc:
        h.encode(col)
    text = str(exc.value)
    assert SECRET not in text and "measles" not in text
    assert "2 distinct values (3 records) are not in hierarchy 'diagnosis'" in text


@pytest.mark.parametrize(
    ("build", "what"),
    [
        (lambda s: intervals(s, widths=[10]), "numbers"),
        (lambda s: dates(s, ["year"]), "dates"),
    ],
)
def test_unparsable_values_are_counted_not_quoted(build, what: str) -> None:
    good = "1980" if what == "numbers" else "1980-01-01"
    with pytest.raises(HierarchyError) as exc:
        build(pd.Series([good, SECRET], name="born"))
    assert SECRET not in str(exc.value)
    assert f"column 'born': 1 values are not {what}" in str(exc.value)


def test_engine_error_for_a_value_outside_the_hierarchy_does_not_quote_it() -> None:
    df = pd.DataFrame({"sex": ["M", "F", SECRET]})
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
            "privacy_models": [{"kind": "k-anonymity", "k": 1}],
        }
    )
    with pytest.raises(HierarchyError) as exc:
        anonymize_table(df, spec, seed=1)
    assert SECRET not in str(exc.value) and "1 distinct values" in str(exc.value)
