"""Metadata drafts: validated as `dmetl validate` validates them, stored, diffed, and released
into the module folder only when every script the draft runs is released."""

from __future__ import annotations

import psycopg
import pytest

from etl_assets import drafts
from etl_assets.cli import main
from etl_assets.governance.connections import Actor, GovernanceError
from etl_assets.governance.scripts import release_script
from etl_assets.metadata.loader import load_module

EDITOR = Actor("ed@example.org", "task_editor")


@pytest.fixture
def shop(tmp_path, dagster_home, pg_url, monkeypatch):
    monkeypatch.setenv("DM_POSTGRES_URL", pg_url)
    monkeypatch.setenv("DM_MODULES_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # paths shown relative to the working directory, as validate
    assert main(["new", "shop"]) == 0
    return tmp_path / "shop"


def test_a_draft_shows_the_errors_dmetl_validate_shows(shop, capsys):
    bad = (shop / "module.yaml").read_text().replace("onViolation: clamp", "strategy: clamp")
    (shop / "module.yaml").write_text(bad)
    capsys.readouterr()
    assert main(["validate", str(shop)]) == 1
    expected = capsys.readouterr().err.strip()
    result = drafts.validate_draft(shop, "module.yaml", bad)
    assert not result.ok
    assert "\n".join(result.errors) == expected
    assert "shop/module.yaml: tables[0].columns[2].range.strategy: unknown key" in expected


def test_a_valid_draft_is_stored_diffed_and_released_after_its_scripts(shop, pg_url, capsys):
    current = (shop / "module.yaml").read_text()
    text = current.replace("description: What this module holds", "description: Items we sell")
    draft_file = shop.parent / "module.yaml"
    draft_file.write_text(text)
    assert main(["draft", "upload", "shop", str(draft_file), "--by", "ed@example.org"]) == 0
    assert "draft 1 of shop stored" in capsys.readouterr().out
    assert (shop / "module.yaml").read_text() == current  # not loaded until released
    assert main(["draft", "diff", "shop", "1"]) == 0
    diff = capsys.readouterr().out
    assert "-description: What this module holds" in diff and "+description: Items we sell" in diff
    assert main(["draft", "release", "shop", "1"]) == 1
    err = capsys.readouterr().err
    assert "released only when all its scripts are" in err
    assert "script scripts/extra_items.py of module 'shop' is not released" in err
    with psycopg.connect(pg_url, autocommit=True) as conn:
        release_script(conn, load_module(shop).model, shop, "scripts/extra_items.py", EDITOR)
    assert main(["draft", "release", "shop", "1"]) == 0
    assert load_module(shop).model.description.startswith("Items we sell")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert drafts.get_draft(conn, 1).status == "released"
        with pytest.raises(GovernanceError, match="released already"):
            drafts.release_draft(conn, shop, 1, EDITOR)
        with pytest.raises(GovernanceError, match="was released already"):
            drafts.discard_draft(conn, "shop", 1, EDITOR)
    assert main(["draft", "upload", "shop", str(draft_file)]) == 0
    assert main(["draft", "discard", "shop", "2"]) == 0
    assert main(["draft", "release", "shop", "2"]) == 1
    assert "draft 2 was discarded already" in capsys.readouterr().err
    assert main(["draft", "list", "shop"]) == 0
    listed = capsys.readouterr().out
    assert "    2  discarded" in listed and "    1  released" in listed


def test_an_invalid_draft_is_not_stored(shop, pg_url, capsys):
    bad = shop.parent / "module.yaml"
    bad.write_text("name: shop\n")
    assert main(["draft", "upload", "shop", str(bad)]) == 1
    assert "shop/module.yaml" in capsys.readouterr().err
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert drafts.list_drafts(conn, "shop") == []
