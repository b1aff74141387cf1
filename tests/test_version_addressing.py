"""Every published version can be addressed by its number; one is current, and every place that
says which one agrees (issue 13 item 2)."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from etl_assets.cli import main
from etl_assets.registry import list_versions
from tests.helpers import materializations, run_version, scaffold_module, write_items


@pytest.fixture
def shop(tmp_path):
    return scaffold_module(tmp_path / "mods" / "shop", "shop")


def publish(folder, version: str, n: int, resources, instance) -> tuple[int, dict]:
    rows = write_items(folder, n)
    result = run_version(folder, version, resources, instance)
    assert result.success
    return rows, materializations(result)[("shop", "upload", "items")]


def test_versions_are_addressable_and_the_current_one_is_marked_everywhere(
    shop, resources, pg_url, dagster_home, monkeypatch, capsys
):
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        rows_100, up_100 = publish(shop, "1.0.0", 3, resources, instance)
        rows_101, up_101 = publish(shop, "1.0.1", 6, resources, instance)
        rows_100, up_again = publish(shop, "1.0.0", 4, resources, instance)  # an older one again
    # the upload's metadata says which version is served
    assert (up_100["dm/served_version"], up_100["dm/is_current"]) == ("1.0.0", True)
    assert (up_101["dm/served_version"], up_101["dm/is_current"]) == ("1.0.1", True)
    assert up_101["dm/served_as"] == "dm_shop.items"
    assert up_101["dm/load_seconds"] > 0 and up_101["dm/swap_seconds"] > 0  # plotted per version
    assert (up_again["dm/served_version"], up_again["dm/is_current"]) == ("1.0.1", False)
    assert "dm/served_as" not in up_again
    assert up_again["dm/published_as"] == "dm_shop.items__v1_0_0"
    with psycopg.connect(pg_url) as conn:
        # the live view serves the highest version; each version's own relation its rows
        assert conn.execute("SELECT count(*) FROM dm_shop.items").fetchone()[0] == rows_101
        registry = {r["version"]: r for r in list_versions(conn, "shop")}
        assert list(registry) == ["1.0.1", "1.0.0"]
        assert [v for v, r in registry.items() if r["current"]] == ["1.0.1"]
        assert registry["1.0.0"]["tables"] == {"items": "dm_shop.items__v1_0_0"}
        asked = registry["1.0.0"]["tables"]["items"]
        assert conn.execute(f"SELECT count(*) FROM {asked}").fetchone()[0] == rows_100
        ids = conn.execute(f"SELECT max(item_id) FROM {asked}").fetchone()[0]
        assert ids == 103  # 1.0.0's re-published rows, not 1.0.1's (105)
        consumers_see = conn.execute(
            "SELECT version FROM dm_registry.versions WHERE module = 'shop' AND current"
        ).fetchall()
        assert consumers_see == [("1.0.1",)]
    # the outbox's pointer names the current version's folder
    outbox = resources["outbox"]
    pointer = outbox.read_current("shop")
    assert (pointer["version"], pointer["folder"]) == ("1.0.1", "1.0.1")
    assert pointer["uri"] == outbox.version_uri("shop", "1.0.1")
    assert outbox.versions("shop") == ["1.0.0", "1.0.1"]  # the pointer is not a version
    # dmetl versions: by version, the current one marked
    monkeypatch.setenv("DM_POSTGRES_URL", pg_url)
    assert main(["versions", "shop"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("* 1.0.1 ") and lines[2].startswith("  1.0.0 ")
    assert "dm_shop.items__v1_0_0" in lines[2]
    assert lines[-1] == "* current: 1.0.1, the version consumers are served"


def test_a_registry_from_before_current_and_state_is_upgraded_in_place(pg_url):
    from etl_assets import registry

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            """CREATE SCHEMA dm_registry;
               CREATE TABLE dm_registry.versions (
                 module text NOT NULL, version text NOT NULL,
                 published_at timestamptz NOT NULL DEFAULT now(), metadata_hash text NOT NULL,
                 sink text NOT NULL, location text NOT NULL, tables jsonb NOT NULL,
                 row_counts jsonb NOT NULL, run_id text, PRIMARY KEY (module, version));
               INSERT INTO dm_registry.versions (module, version, metadata_hash, sink, location,
                 tables, row_counts) VALUES
                 ('m', '1.0.10', 'h', 'postgres:snapshot', 's', '{}', '{"t": 3}'),
                 ('m', '1.0.9', 'h', 'postgres:snapshot', 's', '{}', '{"t": 2}')"""
        )
        registry.ensure(conn)
        assert registry.current_version(conn, "m") == "1.0.10"  # semantic, not text, order
        assert registry.current_row_counts(conn, "m") == ("1.0.10", {"t": 3})
        assert {r["state"] for r in registry.list_versions(conn, "m")} == {"published"}


def test_checking_the_registry_takes_no_lock_a_consumer_holds(pg_url):
    from etl_assets import registry

    with psycopg.connect(pg_url, autocommit=True) as conn:
        registry.ensure(conn)
    with psycopg.connect(pg_url) as reader, psycopg.connect(pg_url, autocommit=True) as other:
        reader.execute(
            "SELECT * FROM dm_registry.versions"
        ).fetchall()  # its transaction stays open
        other.execute("SET lock_timeout = '300ms'")
        registry.ensure(other)  # an ALTER TABLE here would wait for the reader and time out
        assert registry.list_versions(other, "nothing") == []
