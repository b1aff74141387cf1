"""Change sets and the outbox diff (the console's corrections and review, without a server):
what a change set does to the tables, the errors a user gets, and the checks that must stop
an approval after a bad correction."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from etl_assets.console.changes import (
    ChangeSet,
    ChangeSetError,
    apply_changes,
    correctable_tables,
    run_checks,
)
from etl_assets.console.outbox_view import column_stats, diff, page_of
from etl_assets.metadata.loader import discover
from tests.conftest import EXAMPLES


@pytest.fixture(scope="module")
def clinic():
    return next(m for m in discover(EXAMPLES).modules if m.name == "clinic")


def wards() -> pd.DataFrame:
    return pd.DataFrame(
        {"ward_id": ["W1", "W2", "W3"], "name": ["a", "b", "c"], "beds": [1, 2, 3]}
    ).astype({"ward_id": "string", "name": "string", "beds": "int64"})


def patients() -> pd.DataFrame:
    return pd.DataFrame({"patient_id": ["p1", "p2"], "ward_id": ["W1", "W3"]}).astype("string")


def test_add_edit_delete_in_one_change_set(clinic):
    tables = correctable_tables(clinic)
    changes = ChangeSet.parse(
        {"changes": [
            {"table": "wards", "op": "add", "values": {"ward_id": "W9", "name": "n", "beds": "7"}},
            {"table": "wards", "op": "edit", "key": {"ward_id": "W2"}, "values": {"beds": 20}},
            {"table": "wards", "op": "delete", "key": {"ward_id": "W3"}},
        ]}, "test",
    )  # fmt: skip
    out, summary = apply_changes({"wards": wards()}, tables, changes)
    w = out["wards"]
    assert w["ward_id"].tolist() == ["W1", "W2", "W9"]
    assert w.set_index("ward_id").loc["W2", "beds"] == 20
    assert w["beds"].dtype == "int64"  # "7" became a number of the column's type
    s = summary["wards"]
    assert (s.rows_before, s.added, s.edited, s.deleted) == (3, 1, 1, 1)
    assert s.keys == ("W9", "W2", "W3")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"table": "nope", "op": "delete", "key": {"ward_id": "W1"}}, "changes[0].table"),
        ({"table": "wards", "op": "delete", "key": {"ward_id": "W7"}}, "no record with key W7"),
        ({"table": "wards", "op": "delete", "key": {"name": "a"}}, "expected the primary key"),
        ({"table": "wards", "op": "edit", "key": {"ward_id": "W1"}, "values": {"beds": "many"}},
         "changes[0].values.beds: 'many' is not a int64"),
        ({"table": "wards", "op": "edit", "key": {"ward_id": "W1"}, "values": {"colour": 1}},
         "unknown column(s) colour"),
    ],
)  # fmt: skip
def test_a_bad_change_names_where_and_what(clinic, change, message):
    with pytest.raises(ChangeSetError, match=re.escape(message)):
        apply_changes({"wards": wards()}, correctable_tables(clinic), ChangeSet(changes=[change]))


def test_a_change_set_needs_keys_and_values():
    with pytest.raises(ChangeSetError, match=r"changes.0: Value error, an edit needs the"):
        ChangeSet.parse({"changes": [{"table": "wards", "op": "edit", "values": {"a": 1}}]}, "f")
    with pytest.raises(ChangeSetError, match="changes: List should have at least 1 item"):
        ChangeSet.parse({"changes": []}, "f")


def test_checks_fail_on_a_duplicate_key_and_a_dangling_reference(clinic):
    tables = correctable_tables(clinic)
    frames = {"wards": wards(), "patients": patients()}
    changes = ChangeSet(changes=[
        {"table": "wards", "op": "add", "values": {"ward_id": "W1", "name": "dup", "beds": 1}},
        {"table": "wards", "op": "delete", "key": {"ward_id": "W3"}},
    ])  # fmt: skip
    out, summary = apply_changes(frames, tables, changes)
    corrected = {**frames, **out}
    results = {
        (r.check, r.table): r for r in run_checks(clinic, None, None, corrected, summary)
    }  # version None: the privacy models are not read from an outbox here
    assert not results[("primary_key_unique", "wards")].passed
    assert "2 records share a primary key" in results[("primary_key_unique", "wards")].message
    assert "W1" not in results[("primary_key_unique", "wards")].message  # no values quoted
    assert not results[("foreign_keys_resolve", "patients")].passed
    assert results[("rows_conserved", "wards")].passed


def test_conservation_fails_when_the_written_table_lost_rows(clinic):
    tables = correctable_tables(clinic)
    changes = ChangeSet(changes=[{"table": "wards", "op": "delete", "key": {"ward_id": "W3"}}])
    out, summary = apply_changes({"wards": wards()}, tables, changes)
    lost = {"wards": out["wards"].iloc[:1]}  # what a broken write would leave
    [conserved] = [
        r for r in run_checks(clinic, None, None, lost, summary) if r.check == "rows_conserved"
    ]
    assert not conserved.passed and "expected 3 + 0 - 1 = 2" in conserved.message


def test_diff_by_key_and_without_one():
    old = pd.DataFrame({"id": [1, 2, 3, 4], "x": ["a", "b", "c", "d"]})
    new = pd.DataFrame({"id": [1, 2, 4, 5], "x": ["a", "B", "d", "e"]})
    d = diff(new, old, ["id"], "1.0.0")
    assert (d.added, d.removed, d.changed, d.unchanged) == (1, 1, 1, 2)
    assert d.samples == {"added": ["5"], "removed": ["3"], "changed": ["2"]}
    whole = diff(new, old, [], "1.0.0")
    assert (whole.added, whole.removed, whole.changed) == (2, 2, 0)
    assert diff(new, None, ["id"], None).note == "no published version to compare with"


def test_stats_and_pages():
    df = pd.DataFrame({"n": [1.0, None, 3.0], "s": ["a", "a", None]})
    n, s = column_stats(df)
    assert (n.nulls, n.distinct, n.minimum, n.maximum, n.mean) == (1, 2, "1", "3", "2")
    assert (s.nulls, s.distinct, s.minimum) == (1, 1, "")
    page = page_of(pd.DataFrame({"i": range(60)}), 3, size=25)
    assert (page.number, page.pages, page.rows["i"].tolist()) == (3, 3, list(range(50, 60)))
    assert page_of(pd.DataFrame({"i": []}), 9).pages == 1
