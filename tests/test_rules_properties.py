"""Properties of the rules engine over random tables, modules and defects: conservation, unique
output keys, resolving foreign keys, and idempotence (cleaning cleaned data changes nothing)."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_assets.clean.rules import (
    apply_rules,
    check_conservation,
    check_foreign_keys,
    check_unique_key,
)
from etl_assets.metadata.references import table_order
from tests.test_rules_fixtures import make_module, typed

SOURCES = ["a", "b", "c"]

empty_rules = st.sampled_from(
    [None, {"strategy": "keep"}, {"strategy": "drop"}, {"strategy": "fill", "value": "zz"}]
)
number_ranges = st.sampled_from(
    [
        None,
        {"min": 0, "max": 5, "onViolation": "drop"},
        {"min": 0, "max": 5, "onViolation": "clamp"},
        {"max": 2.5, "onViolation": "clamp"},
    ]
)
text_ranges = st.sampled_from(
    [
        None,
        {"allowed": ["p", "q"], "onViolation": "drop"},
        {"allowed": ["p", "q"], "onViolation": "replace", "replacement": "other"},
    ]
)
strategies = st.sampled_from(["sourcePriority", "dropAll", "regenerate"])


def compact(rule: dict | None, key: str) -> dict:
    return {key: rule} if rule is not None else {}


@st.composite
def modules(draw):
    parent_key_type = draw(st.sampled_from(["integer", "string"]))
    parent = {
        "name": "parent",
        "columns": [
            {"name": "id", "dataType": parent_key_type, **compact(draw(empty_rules), "empty")}
            if parent_key_type == "string"
            else {"name": "id", "dataType": "integer"},
            {
                "name": "s",
                "dataType": "string",
                **compact(draw(empty_rules), "empty"),
                **compact(draw(text_ranges), "range"),
            },
            {"name": "x", "dataType": "number", **compact(draw(number_ranges), "range")},
        ],
        "primaryKey": "id",
        "onKeyConflict": draw(strategies),
    }
    child = {
        "name": "child",
        "columns": [
            {"name": "cid", "dataType": "integer"},
            {"name": "line", "dataType": "integer"},
            {
                "name": "pid",
                "dataType": parent_key_type,
                "foreignKey": {"table": "parent", "column": "id"},
            },
            {"name": "n", "dataType": "integer", **compact(draw(number_ranges), "range")},
        ],
        "primaryKey": ["cid", "line"],
        "onKeyConflict": draw(strategies),
    }
    priorities = draw(st.lists(st.integers(0, 2), min_size=3, max_size=3))
    sources = list(zip(SOURCES, priorities, strict=True))
    return make_module([child, parent], {"parent": sources, "child": sources})


def key_values(key_type: str):
    ints = st.integers(0, 6)
    if key_type == "integer":
        return ints
    return st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3", " ", "", "k1~1"]))


@st.composite
def datasets(draw, module):
    key_type = module.table("parent").column("id").dataType
    source = st.sampled_from(SOURCES)
    parent = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "id": key_values(key_type),
                    "s": st.one_of(st.none(), st.sampled_from(["p", "q", "r", " ", ""])),
                    "x": st.one_of(
                        st.none(), st.sampled_from([-1.0, 0.0, 2.0, 3.0, 9.0, float("nan")])
                    ),
                    "_dm_source": source,
                }
            ),
            max_size=25,
        )
    )
    child = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "cid": st.integers(0, 4),
                    "line": st.one_of(st.none(), st.integers(0, 2)),
                    "pid": st.one_of(st.none(), key_values(key_type)),
                    "n": st.one_of(st.none(), st.integers(-2, 8)),
                    "_dm_source": source,
                }
            ),
            max_size=25,
        )
    )
    return {"parent": parent, "child": child}


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_properties(data):
    module = data.draw(modules())
    records = data.draw(datasets(module))
    cleaned: dict[str, pd.DataFrame] = {}
    key_maps: dict[str, pd.DataFrame] = {}
    for name in table_order(module):
        table = module.table(name)
        df = typed(table, records[name])
        parents = {n: cleaned[n] for n in cleaned}
        result = apply_rules(
            df, table, module, version="1", parents=parents, parent_key_maps=key_maps
        )
        # conservation
        passed, message = check_conservation(result)
        assert passed, message
        assert result.counts["rows_in"] == len(df)
        # output keys unique, output foreign keys resolve
        assert check_unique_key(result.data, table)[0]
        assert check_foreign_keys(result.data, table, parents)[0]
        assert list(result.data.dtypes) == list(df.dtypes)
        # idempotence
        again = apply_rules(
            result.data, table, module, version="1", parents=parents, parent_key_maps=key_maps
        )
        assert_same(again.data, result.data)
        assert len(again.quarantine) == 0
        assert again.counts["rows_out"] == result.counts["rows_out"]
        cleaned[name] = result.data
        if result.key_map is not None:
            key_maps[name] = result.key_map
