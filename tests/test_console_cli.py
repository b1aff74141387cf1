"""`dmetl outbox show|edit`: a change set from a file corrects a prepared version, the checks run
again, the audit log gets the keys but not the values, and a bad change set changes nothing."""

from __future__ import annotations

import json

import pandas as pd
import psycopg

from etl_assets.cli import main


def test_outbox_show_and_edit(tmp_path, dagster_home, pg_url, monkeypatch, capsys):
    monkeypatch.setenv("DM_POSTGRES_URL", pg_url)
    monkeypatch.setenv("DM_MODULES_DIR", str(tmp_path / "mods"))
    monkeypatch.setenv("DM_OUTBOX_ROOT", str(tmp_path / "outbox"))
    assert main(["new", "shop"]) == 0
    meta = tmp_path / "mods" / "shop" / "module.yaml"
    meta.write_text(meta.read_text().replace("autoUpload: true", "autoUpload: false"))
    assert main(["run", "shop"]) == 0
    capsys.readouterr()
    assert main(["outbox", "show", "shop", "0.1.1"]) == 0
    out = capsys.readouterr().out
    assert "shop 0.1.1: waiting for approval" in out and "items" in out
    assert main(["outbox", "show", "shop", "0.1.1", "items"]) == 0
    assert "no published version to compare with" in capsys.readouterr().out

    table = tmp_path / "outbox" / "published" / "shop" / "0.1.1" / "items.parquet"
    before = pd.read_parquet(table)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"changes": [
        {"table": "items", "op": "edit", "key": {"item_id": 1}, "values": {"price": "cheap"}}]}))  # fmt: skip
    assert main(["outbox", "edit", "shop", "0.1.1", "--file", str(bad), "--reason", "x"]) == 1
    assert "changes[0].values.price: 'cheap' is not a double" in capsys.readouterr().err
    assert pd.read_parquet(table).equals(before)  # nothing written

    good = tmp_path / "changes.json"
    good.write_text(json.dumps({"changes": [
        {"table": "items", "op": "edit", "key": {"item_id": 1}, "values": {"label": "green apple"}},
        {"table": "items", "op": "delete", "key": {"item_id": 2}}]}))  # fmt: skip
    args = [
        "outbox",
        "edit",
        "shop",
        "0.1.1",
        "--file",
        str(good),
        "--reason",
        "typo",
        "--by",
        "dm",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "items: 0 added, 1 edited, 1 deleted" in out
    assert "ok   rows_conserved (items)" in out and "all blocking checks pass" in out
    after = pd.read_parquet(table)
    assert len(after) == len(before) - 1
    assert after.set_index("item_id").loc[1, "label"] == "green apple"
    with psycopg.connect(pg_url) as conn:
        (body,) = conn.execute(
            "SELECT body FROM dm_audit.events WHERE action = 'outbox.correct'"
        ).fetchone()
    event = json.loads(body)
    assert event["actor"] == "dm" and event["detail"]["tables"]["items"]["keys"] == ["1", "2"]
    assert "green apple" not in body

    # a correction that breaks the key blocks the approval
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps({"changes": [
        {"table": "items", "op": "add", "values": {"item_id": 1, "label": "again"}}]}))  # fmt: skip
    assert main(["outbox", "edit", "shop", "0.1.1", "--file", str(dup), "--reason", "dup"]) == 1
    assert "FAIL primary_key_unique (items)" in capsys.readouterr().out
    assert main(["approve", "shop", "0.1.1", "--by", "tm"]) == 1
    assert "a blocking check fails on its corrected outbox" in capsys.readouterr().err
