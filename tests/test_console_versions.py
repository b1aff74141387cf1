"""A version's state in the console, from what the registry, the console's decisions, the outbox
and the run records say about it (the rules behind the module page's State column)."""

from __future__ import annotations

import datetime as dt

import pytest

from etl_assets.console.store import Decision
from etl_assets.console.versions import RunInfo, VersionInfo, version_state

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def run(status: str, job: str = "clinic_prepare_job") -> RunInfo:
    return RunInfo("r1", job, status, NOW, "tara")


def decided(kind: str) -> Decision:
    return Decision(kind, "tara", NOW, "", None)


@pytest.mark.parametrize(
    ("info", "published", "state"),
    [
        (VersionInfo("1.0.1"), set(), "preparing"),  # allocated, no run yet
        (VersionInfo("1.0.1", runs=[run("STARTED")]), set(), "preparing"),
        (VersionInfo("1.0.1", runs=[run("QUEUED", "clinic_upload_job")], in_outbox=True), set(),
         "uploading"),
        (VersionInfo("1.0.1", runs=[run("FAILURE")]), set(), "failed"),
        (VersionInfo("1.0.1", runs=[run("CANCELED")], in_outbox=True), set(), "failed"),
        (VersionInfo("1.0.1", runs=[run("SUCCESS")], in_outbox=True), set(), "waiting_for_approval"),
        (VersionInfo("1.0.1", runs=[run("SUCCESS")], in_outbox=True, approval={"approved_by": "t"}),
         set(), "approved"),
        (VersionInfo("1.0.1", runs=[run("SUCCESS")], in_outbox=True, approval={"approved_by": "t"},
                     decisions=[decided("rejected")]), set(), "rejected"),
        (VersionInfo("1.0.1", runs=[run("SUCCESS")]), set(), "expired"),  # outbox deleted
        (VersionInfo("1.0.1", runs=[run("SUCCESS")], in_outbox=True), {"1.0.1"}, "published"),
        (VersionInfo("1.0.1", runs=[run("SUCCESS")], decisions=[decided("discarded")]), set(),
         "discarded"),
    ],
)  # fmt: skip
def test_state(info, published, state):
    assert version_state(info, "clinic", published) == state


def test_label_marks_the_current_version():
    v = VersionInfo("1.0.2", state="published", current=True)
    assert v.label == "published (current)"
    assert VersionInfo("1.0.1", state="waiting_for_approval").label == "waiting for approval"
