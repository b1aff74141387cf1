"""Empty-value and range rules, and dedupe, on small tables with the expected rows written out."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from etl_assets.clean.rules import apply_rules, check_conservation
from etl_assets.quarantine import QUARANTINE_COLUMNS
from tests.test_rules_fixtures import d, make_module, rows, typed


def run(columns: list[dict], records: list[dict], **table):
    module = make_module([{"name": "t", "columns": columns, **table}])
    t = module.table("t")
    df = typed(t, records)
    result = apply_rules(df, t, module, version="1.0.0", parents={})
    assert check_conservation(result)[0], check_conservation(result)[1]
    assert list(result.data.columns) == list(df.columns)
    assert list(result.data.dtypes) == list(df.dtypes)
    assert list(result.quarantine.columns) == QUARANTINE_COLUMNS
    return result, df


def q(result) -> list[tuple]:
    return rows(result.quarantine, ["action", "rule", "column", "reason", "value"])


def test_empty_keep_passes_nulls_and_blanks_through():
    cols = [{"name": "s", "dataType": "string", "empty": {"strategy": "keep"}}]
    result, _ = run(cols, [{"s": None}, {"s": "  "}, {"s": "a"}])
    assert rows(result.data) == [(None, "a"), ("  ", "a"), ("a", "a")]
    assert len(result.quarantine) == 0


def test_empty_fill_replaces_null_nan_and_blank_and_records_each_cell():
    cols = [
        {"name": "s", "dataType": "string", "empty": {"strategy": "fill", "value": "?"}},
        {"name": "x", "dataType": "number", "empty": {"strategy": "fill", "value": 0}},
        {"name": "day", "dataType": "date", "empty": {"strategy": "fill", "value": "2020-01-01"}},
    ]
    records = [
        {"s": None, "x": float("nan"), "day": None},
        {"s": " \t", "x": None, "day": d("2021-05-05")},
        {"s": "ok", "x": 1.5, "day": d("2022-02-02")},
    ]
    result, df = run(cols, records)
    assert rows(result.data) == [
        ("?", 0.0, d("2020-01-01"), "a"),
        ("?", 0.0, d("2021-05-05"), "a"),
        ("ok", 1.5, d("2022-02-02"), "a"),
    ]
    assert q(result) == [
        ("modified", "empty", "s", "filled", None),
        ("modified", "empty", "s", "filled", " \t"),
        ("modified", "empty", "x", "filled", "nan"),
        ("modified", "empty", "x", "filled", None),
        ("modified", "empty", "day", "filled", None),
    ]
    assert result.counts["filled_s"] == 2
    assert result.counts["filled_x"] == 2
    assert result.counts["filled_day"] == 1
    assert df["s"].isna().sum() == 1  # the caller's frame is untouched


def test_empty_drop_rejects_the_record_once():
    cols = [
        {"name": "a", "dataType": "string", "empty": {"strategy": "drop"}},
        {"name": "b", "dataType": "integer", "empty": {"strategy": "drop"}},
    ]
    result, _ = run(cols, [{"a": "", "b": None}, {"a": "x", "b": None}, {"a": "y", "b": 2}])
    assert rows(result.data) == [("y", 2, "a")]
    assert q(result) == [
        ("rejected", "empty", "a", "blank", ""),
        ("rejected", "empty", "b", "null", None),
    ]
    assert result.counts["rejected_empty"] == 2
    assert result.counts["rows_out"] == 1
    records = result.quarantine["record"].tolist()
    assert records == ['{"a":"","b":null}', '{"a":"x","b":null}']


def test_range_drop_and_clamp_numbers():
    cols = [
        {"name": "n", "dataType": "integer", "range": {"min": 0, "max": 10, "onViolation": "drop"}},
        {"name": "x", "dataType": "number", "range": {"min": 0.5, "onViolation": "clamp"}},
    ]
    records = [
        {"n": -1, "x": 1.0},
        {"n": 11, "x": 1.0},
        {"n": 5, "x": 0.1},
        {"n": None, "x": None},
        {"n": 10, "x": 2.0},
    ]
    result, _ = run(cols, records)
    assert rows(result.data) == [(5, 0.5, "a"), (None, None, "a"), (10, 2.0, "a")]
    assert q(result) == [
        ("rejected", "range", "n", "below_min", "-1"),
        ("rejected", "range", "n", "above_max", "11"),
        ("modified", "range", "x", "below_min", "0.1"),
    ]
    assert result.counts["rejected_range"] == 2
    assert result.counts["clamped_x"] == 1


def test_clamp_integer_with_fractional_bound_rounds_inwards():
    cols = [{"name": "n", "dataType": "integer", "range": {"max": 9.5, "onViolation": "clamp"}}]
    result, _ = run(cols, [{"n": 12}, {"n": 8}])
    assert rows(result.data) == [(9, "a"), (8, "a")]


def test_clamp_dates_and_datetimes():
    cols = [
        {
            "name": "day",
            "dataType": "date",
            "range": {"min": "2020-01-01", "max": "2020-12-31", "onViolation": "clamp"},
        },
        {
            "name": "at",
            "dataType": "datetime",
            "range": {"max": "2024-01-01T12:00:00", "onViolation": "clamp"},
        },
    ]
    records = [
        {"day": d("2019-06-01"), "at": dt.datetime(2025, 1, 1)},
        {"day": d("2021-06-01"), "at": dt.datetime(2023, 1, 1)},
        {"day": d("2020-06-01"), "at": None},
    ]
    result, _ = run(cols, records)
    assert rows(result.data) == [
        (d("2020-01-01"), dt.datetime(2024, 1, 1, 12), "a"),
        (d("2020-12-31"), dt.datetime(2023, 1, 1), "a"),
        (d("2020-06-01"), None, "a"),
    ]
    assert result.counts["clamped_day"] == 2
    assert result.counts["clamped_at"] == 1


def test_allowed_set_drop_and_replace():
    cols = [
        {
            "name": "c",
            "dataType": "string",
            "range": {"allowed": ["r", "g"], "onViolation": "drop"},
        },
        {
            "name": "k",
            "dataType": "integer",
            "range": {"allowed": [1, 2], "onViolation": "replace", "replacement": 0},
        },
    ]
    records = [{"c": "r", "k": 7}, {"c": "b", "k": 1}, {"c": None, "k": 0}, {"c": "g", "k": 2}]
    result, _ = run(cols, records)
    assert rows(result.data) == [("r", 0, "a"), (None, 0, "a"), ("g", 2, "a")]
    assert q(result) == [
        ("rejected", "range", "c", "not_allowed", "b"),
        ("modified", "range", "k", "not_allowed", "7"),
    ]
    assert result.counts["replaced_k"] == 1


def test_dedupe_ignores_source_and_keeps_the_best_source():
    module = make_module(
        [
            {
                "name": "t",
                "columns": [
                    {"name": "a", "dataType": "integer"},
                    {"name": "s", "dataType": "string"},
                ],
            }
        ],
        {"t": [("low", 1), ("high", 5)]},
    )
    t = module.table("t")
    records = [
        {"a": 1, "s": "x", "_dm_source": "low"},
        {"a": 1, "s": "x", "_dm_source": "high"},
        {"a": 1, "s": "x", "_dm_source": "high"},
        {"a": 1, "s": None, "_dm_source": "low"},
        {"a": 1, "s": None, "_dm_source": "low"},
        {"a": 2, "s": "x", "_dm_source": "low"},
    ]
    result = apply_rules(typed(t, records), t, module, version="1", parents={})
    assert rows(result.data) == [(1, "x", "high"), (1, None, "low"), (2, "x", "low")]
    assert result.counts["duplicates"] == 3
    assert result.counts["rejected"] == 0
    assert rows(result.quarantine, ["source", "rule", "reason"]) == [
        ("low", "duplicate", "exact_duplicate"),
        ("high", "duplicate", "exact_duplicate"),
        ("low", "duplicate", "exact_duplicate"),
    ]
    assert check_conservation(result)[0]


def test_fill_then_dedupe_merges_records_that_differed_only_in_missing_form():
    cols = [{"name": "s", "dataType": "string", "empty": {"strategy": "fill", "value": "-"}}]
    result, _ = run(cols, [{"s": None}, {"s": ""}, {"s": "-"}])
    assert rows(result.data) == [("-", "a")]
    assert result.counts == {
        "rows_in": 3,
        "rows_out": 1,
        "rejected": 0,
        "duplicates": 2,
        "rejected_empty": 0,
        "rejected_range": 0,
        "rejected_primary_key": 0,
        "rejected_foreign_key": 0,
        "filled_s": 2,
    }


def test_index_of_input_is_not_carried_over():
    cols = [{"name": "n", "dataType": "integer", "empty": {"strategy": "drop"}}]
    module = make_module([{"name": "t", "columns": cols}])
    t = module.table("t")
    df = typed(t, [{"n": None}, {"n": 1}])
    df.index = pd.Index([10, 20])
    result = apply_rules(df, t, module, version="1", parents={})
    assert list(result.data.index) == [0]


@pytest.mark.parametrize("value", ["x", " x "])
def test_text_with_content_is_not_empty(value):
    cols = [{"name": "s", "dataType": "string", "empty": {"strategy": "drop"}}]
    result, _ = run(cols, [{"s": value}])
    assert result.counts["rows_out"] == 1
