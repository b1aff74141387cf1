"""Which metadata produced which version, and what changed between two (issue 13 item 7)."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from etl_assets import history
from etl_assets.cli import main
from tests.helpers import run_version, scaffold_module, write_items


@pytest.fixture
def published(tmp_path, resources, pg_url, dagster_home):
    """shop 1.0.0 with the template's metadata; 1.0.1 and 1.0.2 after a metadata change."""
    folder = scaffold_module(tmp_path / "mods" / "shop", "shop")
    write_items(folder, 3)
    meta = folder / "module.yaml"
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        assert run_version(folder, "1.0.0", resources, instance).success
        text = meta.read_text()
        assert "range: {min: 0, onViolation: clamp}" in text
        meta.write_text(
            text.replace(
                "range: {min: 0, onViolation: clamp}", "range: {min: 1, onViolation: drop}"
            )
        )
        assert run_version(folder, "1.0.1", resources, instance).success
        assert run_version(folder, "1.0.2", resources, instance).success
    return folder


def test_history_lists_the_hash_behind_each_version_and_diffs_them(
    published, resources, pg_url, monkeypatch, capsys
):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        entries = history.history(conn, "shop")
        assert [e.version for e in entries] == ["1.0.2", "1.0.1", "1.0.0"]
        assert entries[0].metadata_hash == entries[1].metadata_hash != entries[2].metadata_hash
        assert [r.versions for r in history.revisions(entries)] == [["1.0.2", "1.0.1"], ["1.0.0"]]
        text = history.diff(conn, "shop", "1.0.0", "1.0.1")
        assert history.diff(conn, "shop", "1.0.1", "1.0.2") == ""
    old, new = entries[2].metadata_hash[:16], entries[0].metadata_hash[:16]
    assert text.startswith(f"--- shop 1.0.0 (metadata {old})\n+++ shop 1.0.1 (metadata {new})\n")
    changed = [
        line[0] + line[1:].strip()
        for line in text.splitlines()
        if line[:1] in "+-" and line[:3] not in ("---", "+++")
    ]
    assert sorted(changed) == sorted(
        ['-"min": 0,', '+"min": 1,', '-"onViolation": "clamp"', '+"onViolation": "drop"']
    )

    monkeypatch.setenv("DM_POSTGRES_URL", pg_url)
    monkeypatch.setenv("DM_OUTBOX_ROOT", resources["outbox"].root)
    assert main(["history", "shop"]) == 0
    out = capsys.readouterr().out
    assert f"* 1.0.2      {new}" in out and f"  1.0.0      {old}" in out
    assert f"metadata {new} produced 1.0.2, 1.0.1" in out
    assert f"metadata {old} produced 1.0.0" in out
    assert main(["history", "shop", "--diff", "1.0.0", "1.0.1"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == text.rstrip("\n")
    assert main(["history", "shop", "--diff", "1.0.1", "1.0.2"]) == 0
    assert "were produced by the same metadata" in capsys.readouterr().out
    assert main(["history", "shop", "--diff", "1.0.0", "2.0.0"]) == 1
    err = capsys.readouterr().err
    assert "shop 2.0.0 is not a published version (published: 1.0.2, 1.0.1, 1.0.0)" in err


def test_a_version_published_before_documents_were_kept_diffs_from_its_outbox_snapshot(
    published, resources, pg_url
):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM dm_registry.metadata_documents")
        with pytest.raises(history.HistoryError, match="was not kept"):
            history.diff(conn, "shop", "1.0.0", "1.0.1")
        text = history.diff(conn, "shop", "1.0.0", "1.0.1", outbox=resources["outbox"])
    assert '+            "onViolation": "drop"' in text
    # the snapshot carries the version it was written for
    assert '-  "version": "1.0.0"' in text and '+  "version": "1.0.1"' in text
