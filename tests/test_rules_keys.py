"""Primary-key strategies (single and composite keys) and foreign keys, including cascades down a
chain A -> B -> C and children of a re-keyed parent, with the expected rows written out."""

from __future__ import annotations

import pytest

from etl_assets.clean.rules import (
    apply_rules,
    check_conservation,
    check_foreign_keys,
    check_unique_key,
)
from etl_assets.metadata.references import table_order
from tests.test_rules_fixtures import make_module, rows, typed

SOURCES = [("low", 1), ("high", 5), ("also_high", 5)]


def keyed(strategy: str, key: list[str] | str = "id", key_type: str = "integer"):
    columns = [
        {"name": "id", "dataType": key_type},
        {"name": "line", "dataType": "integer"},
        {"name": "v", "dataType": "string"},
    ]
    module = make_module(
        [{"name": "t", "columns": columns, "primaryKey": key, "onKeyConflict": strategy}],
        {"t": SOURCES},
    )
    return module, module.table("t")


def run(module, table, records, parents=None, key_maps=None):
    result = apply_rules(
        typed(table, records),
        table,
        module,
        version="1.0.0",
        parents=parents or {},
        parent_key_maps=key_maps,
    )
    assert check_conservation(result)[0], check_conservation(result)[1]
    assert check_unique_key(result.data, table)[0]
    return result


RECORDS = [
    {"id": 1, "line": 1, "v": "a", "_dm_source": "low"},
    {"id": 1, "line": 1, "v": "b", "_dm_source": "high"},
    {"id": 1, "line": 2, "v": "c", "_dm_source": "also_high"},
    {"id": 2, "line": 1, "v": "d", "_dm_source": "low"},
    {"id": 2, "line": 1, "v": "e", "_dm_source": "low"},
    {"id": 3, "line": 1, "v": "f", "_dm_source": "also_high"},
]


def test_source_priority_highest_wins_then_collection_order_then_first_record():
    module, t = keyed("sourcePriority")
    result = run(module, t, RECORDS)
    # id 1: high and also_high tie on priority 5; high is listed first in the collection.
    # id 2: both from low; the first record in extraction order wins.
    assert rows(result.data) == [(1, 1, "b", "high"), (2, 1, "d", "low"), (3, 1, "f", "also_high")]
    assert rows(result.quarantine, ["source", "rule", "column", "reason", "value"]) == [
        ("low", "primaryKey", "id", "lost_key_conflict", "1"),
        ("also_high", "primaryKey", "id", "lost_key_conflict", "1"),
        ("low", "primaryKey", "id", "lost_key_conflict", "2"),
    ]
    assert result.counts["rejected_primary_key"] == 3
    assert result.key_map is None


def test_drop_all_removes_every_record_of_a_conflicting_key():
    module, t = keyed("dropAll")
    result = run(module, t, RECORDS)
    assert rows(result.data) == [(3, 1, "f", "also_high")]
    assert result.counts["rejected_primary_key"] == 5
    assert set(result.quarantine["reason"]) == {"key_conflict"}


def test_composite_key_conflicts_only_on_the_whole_key():
    module, t = keyed("sourcePriority", key=["id", "line"])
    result = run(module, t, RECORDS)
    assert rows(result.data) == [
        (1, 1, "b", "high"),
        (1, 2, "c", "also_high"),
        (2, 1, "d", "low"),
        (3, 1, "f", "also_high"),
    ]
    assert result.counts["rejected_primary_key"] == 2


def test_composite_drop_all():
    module, t = keyed("dropAll", key=["id", "line"])
    result = run(module, t, RECORDS)
    assert rows(result.data) == [(1, 2, "c", "also_high"), (3, 1, "f", "also_high")]


def test_regenerate_integer_keys_continue_after_the_maximum():
    module, t = keyed("regenerate")
    result = run(module, t, RECORDS)
    assert rows(result.data) == [
        (4, 1, "a", "low"),
        (1, 1, "b", "high"),
        (5, 2, "c", "also_high"),
        (2, 1, "d", "low"),
        (6, 1, "e", "low"),
        (3, 1, "f", "also_high"),
    ]
    assert rows(result.key_map) == [(1, "low", 4), (1, "also_high", 5), (2, "low", 6)]
    assert list(result.key_map.columns) == ["old_id", "_dm_source", "new_id"]
    assert result.counts["rekeyed"] == 3
    assert rows(result.quarantine, ["action", "rule", "column", "reason", "value"]) == [
        ("modified", "primaryKey", "id", "regenerated", "1"),
        ("modified", "primaryKey", "id", "regenerated", "1"),
        ("modified", "primaryKey", "id", "regenerated", "2"),
    ]


def test_regenerate_string_keys_avoid_existing_values():
    module, t = keyed("regenerate", key_type="string")
    records = [
        {"id": "k", "line": 1, "v": "a", "_dm_source": "high"},
        {"id": "k", "line": 2, "v": "b", "_dm_source": "low"},
        {"id": "k", "line": 3, "v": "c", "_dm_source": "low"},
        {"id": "k~1", "line": 4, "v": "d", "_dm_source": "low"},
    ]
    result = run(module, t, records)
    assert rows(result.data, ["id", "v"]) == [("k", "a"), ("k~3", "b"), ("k~2", "c"), ("k~1", "d")]
    assert rows(result.key_map) == [("k", "low", "k~3"), ("k", "low", "k~2")]


def test_regenerate_composite_key_changes_the_last_integer_column():
    module, t = keyed("regenerate", key=["id", "line"])
    result = run(module, t, RECORDS)
    assert rows(result.data, ["id", "line", "v"]) == [
        (1, 3, "a"),
        (1, 1, "b"),
        (1, 2, "c"),
        (2, 1, "d"),
        (2, 4, "e"),
        (3, 1, "f"),
    ]
    assert list(result.key_map.columns) == [
        "old_id",
        "old_line",
        "_dm_source",
        "new_id",
        "new_line",
    ]
    assert rows(result.key_map) == [(1, 1, "low", 1, 3), (2, 1, "low", 2, 4)]


def test_null_key_is_rejected():
    module, t = keyed("sourcePriority")
    result = run(module, t, [{"id": None, "line": 1, "v": "a"}, {"id": 1, "line": 1, "v": "b"}])
    assert rows(result.data, ["id"]) == [(1,)]
    assert rows(result.quarantine, ["reason"]) == [("null_key",)]


def chain_module(parent_strategy: str = "sourcePriority"):
    """a <- b <- c: c.b_id references b.id, b.a_id references a.id."""
    return make_module(
        [
            {
                "name": "c",
                "columns": [
                    {"name": "id", "dataType": "integer"},
                    {
                        "name": "b_id",
                        "dataType": "integer",
                        "foreignKey": {"table": "b", "column": "id"},
                    },
                ],
                "primaryKey": "id",
                "onKeyConflict": "sourcePriority",
            },
            {
                "name": "b",
                "columns": [
                    {"name": "id", "dataType": "integer"},
                    {
                        "name": "a_id",
                        "dataType": "string",
                        "foreignKey": {"table": "a", "column": "code"},
                    },
                ],
                "primaryKey": "id",
                "onKeyConflict": "sourcePriority",
            },
            {
                "name": "a",
                "columns": [
                    {"name": "code", "dataType": "string"},
                    {
                        "name": "n",
                        "dataType": "integer",
                        "range": {"min": 0, "onViolation": "drop"},
                    },
                ],
                "primaryKey": "code",
                "onKeyConflict": parent_strategy,
            },
        ],
        {"a": [("a", 0), ("z", 9)]},
    )


def clean_all(module, data: dict[str, list[dict]]):
    results, key_maps = {}, {}
    for name in table_order(module):
        t = module.table(name)
        parents = {n: r.data for n, r in results.items()}
        results[name] = run(module, t, data[name], parents, key_maps)
        assert check_foreign_keys(results[name].data, t, parents)[0]
        if results[name].key_map is not None:
            key_maps[name] = results[name].key_map
    return results


def test_foreign_key_removal_cascades_down_a_chain():
    module = chain_module()
    assert table_order(module) == ["a", "b", "c"]
    results = clean_all(
        module,
        {
            "a": [{"code": "x", "n": 1}, {"code": "y", "n": -1}],
            "b": [{"id": 1, "a_id": "x"}, {"id": 2, "a_id": "y"}, {"id": 3, "a_id": None}],
            "c": [{"id": 10, "b_id": 1}, {"id": 11, "b_id": 2}, {"id": 12, "b_id": 9}],
        },
    )
    assert rows(results["a"].data, ["code"]) == [("x",)]
    assert rows(results["b"].data, ["id", "a_id"]) == [(1, "x"), (3, None)]
    assert rows(results["c"].data, ["id", "b_id"]) == [(10, 1)]
    assert rows(results["c"].quarantine, ["rule", "column", "reason", "value"]) == [
        ("foreignKey", "b_id", "dangling_reference", "2"),
        ("foreignKey", "b_id", "dangling_reference", "9"),
    ]
    assert results["b"].counts["rejected_foreign_key"] == 1
    assert results["c"].counts["rejected_foreign_key_b_id"] == 2


def test_children_of_a_regenerated_parent_keep_pointing_at_the_original_key():
    module = chain_module("regenerate")
    results = clean_all(
        module,
        {
            "a": [
                {"code": "x", "n": 1, "_dm_source": "a"},
                {"code": "x", "n": 2, "_dm_source": "z"},
            ],
            "b": [{"id": 1, "a_id": "x"}],
            "c": [{"id": 10, "b_id": 1}],
        },
    )
    # z has the higher priority, so z's record keeps "x" and a's record becomes "x~1".
    assert rows(results["a"].data) == [("x~1", 1, "a"), ("x", 2, "z")]
    assert rows(results["b"].data, ["id", "a_id"]) == [(1, "x")]
    assert results["b"].counts["fk_rekeyed_parent_a_id"] == 1


def test_missing_parent_data_is_a_clear_error():
    module = chain_module()
    t = module.table("b")
    with pytest.raises(KeyError, match="no cleaned data for 'a'"):
        apply_rules(typed(t, [{"id": 1, "a_id": "x"}]), t, module, version="1", parents={})


def test_checks_report_violations():
    module, t = keyed("sourcePriority")
    bad = typed(t, [{"id": 1, "line": 1}, {"id": 1, "line": 2}])
    passed, message = check_unique_key(bad, t)
    assert not passed and "2 records share a primary key" in message
    chain = chain_module()
    child = typed(chain.table("c"), [{"id": 1, "b_id": 5}])
    parent = typed(chain.table("b"), [{"id": 4, "a_id": "x"}])
    passed, message = check_foreign_keys(child, chain.table("c"), {"b": parent})
    assert not passed and "not in b.id" in message
