"""The privacy boundary, tried as a data consumer would: what the consumer role can read of both
published examples undoes none of the anonymization."""

from __future__ import annotations

import re
import uuid

import dagster as dg
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from etl_assets.metadata.loader import load_module
from etl_assets.stages import asset_key
from resources.io_manager import IO_MANAGER_KEY
from tests.helpers import materializations, run_version

VERSIONS = {"clinic": "1.0.1", "staff_survey": "2.3.1"}


@pytest.fixture(scope="module")
def published(tmp_path_factory, pg_server_url):
    """Both examples published into one fresh database (module scope: the tests only read)."""
    import shutil

    from tests.conftest import EXAMPLES, local_resources

    tmp = tmp_path_factory.mktemp("boundary")
    name = f"dmtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(pg_server_url, dbname=name)
    resources = local_resources(tmp, url)
    levels: dict[str, dict[str, int]] = {}
    (tmp / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp / "instance")) as instance:
        for module, version in VERSIONS.items():
            shutil.copytree(EXAMPLES / module, tmp / module)
            result = run_version(tmp / module, version, resources, instance)
            assert result.success
            for (m, stage, table), md in materializations(result).items():
                if stage == "anonymize":
                    levels[f"{m}.{table}"] = {
                        k.removeprefix("dm/level_"): int(v)
                        for k, v in md.items()
                        if k.startswith("dm/level_")
                    }
    yield {"url": url, "tmp": tmp, "resources": resources, "levels": levels}
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def consumer_url(published):
    """A login user that holds only the consumer role."""
    user = f"probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(published["url"], autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE dm_consumer").format(sql.Identifier(user))
        )
    yield psycopg.conninfo.make_conninfo(published["url"], user=user)
    with psycopg.connect(published["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(user)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))


def relations(url: str, where: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            f" WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND {where}"
            " ORDER BY 1, 2"
        ).fetchall()


def readable_values(url: str) -> dict[tuple[str, str, str], set[str]]:
    """Every value of every column of every relation the user can read, as text."""
    out: dict[tuple[str, str, str], set[str]] = {}
    with psycopg.connect(url) as conn:
        for schema, table in relations(url, "true"):
            rel = sql.Identifier(schema, table)
            cur = conn.execute(sql.SQL("SELECT * FROM {}").format(rel))
            names = [d.name for d in cur.description]
            for row in cur.fetchall():
                for name, value in zip(names, row, strict=True):
                    if value is not None:
                        out.setdefault((schema, table, name), set()).add(str(value))
    return out


def test_the_consumer_role_is_refused_everything_restricted(published, consumer_url):
    restricted = relations(
        published["url"],
        "(table_schema LIKE '%%\\_\\_restricted' OR (table_schema = 'dm_registry'"
        " AND table_name <> 'versions'))",
    )
    assert ("dm_clinic__restricted", "quarantine") in restricted
    assert ("dm_staff_survey__restricted", "quarantine") in restricted
    for schema, table in restricted:
        with (
            psycopg.connect(consumer_url) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(schema, table)))
    readable = {s for s, _ in relations(consumer_url, "true")}
    assert readable == {"dm_clinic", "dm_staff_survey", "dm_registry"}
    assert {t for s, t in relations(consumer_url, "table_schema = 'dm_registry'")} == {"versions"}


def clean_records(published, module: str, table: str) -> pd.DataFrame:
    """The restricted zone's truth: the version's clean records (what was published, before
    anonymization, plus what anonymization later removed)."""
    io = published["resources"][IO_MANAGER_KEY]
    return io.read(asset_key(module, "clean", table), VERSIONS[module])


def test_nothing_the_consumer_reads_reverses_a_pseudonym_or_shows_a_raw_quasi_identifier(
    published, consumer_url
):
    readable = readable_values(consumer_url)
    everything = set().union(*readable.values())
    # text that holds records (JSON, free text) counts by its parts too
    everything |= {t for v in list(everything) if len(v) > 20 for t in re.findall(r"[\w@.:-]+", v)}
    everything |= {
        t.strip('"') for v in list(everything) if len(v) > 20 for t in re.findall(r'"[^"]*"', v)
    }
    reversed_pseudonyms = raw_qi_values = 0
    checked = {"identifiers": 0, "quasi_identifiers": 0}
    for module in VERSIONS:
        model = load_module(published["tmp"] / module).model
        for table in model.tables:
            clean = clean_records(published, module, table.name)
            qis = set(table.privacy.quasiIdentifiers) if table.privacy else set()
            levels = published["levels"].get(f"{module}.{table.name}", {})
            for col in table.columns:
                methods = {op.method for op in col.anonymization}
                raw = {str(v) for v in clean[col.name].dropna()}
                if methods & {"pseudonymize", "suppress"}:
                    # an original id or a suppressed value anywhere the consumer can read
                    hits = raw & everything
                    reversed_pseudonyms += len(hits)
                    checked["identifiers"] += len(raw)
                elif col.name in qis and levels.get(col.name, 0) > 0:
                    for (schema, rel, column), values in readable.items():
                        if (
                            schema == f"dm_{module}"
                            and rel.startswith(table.name)
                            and column == col.name
                        ):
                            raw_qi_values += len(raw & values)
                    checked["quasi_identifiers"] += len(raw)
    assert checked["identifiers"] > 100 and checked["quasi_identifiers"] > 100, checked
    assert reversed_pseudonyms == 0
    assert raw_qi_values == 0


def test_published_and_restricted_files_have_the_modes_of_their_zone(published):
    outbox = published["tmp"] / "outbox"
    croissant = outbox / "published" / "clinic" / "1.0.1" / "croissant.json"
    assert croissant.stat().st_mode & 0o044 == 0o044  # readable by group and others (umask 022)
    for path in (outbox / "restricted").rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert path.stat().st_mode & 0o777 == expected, path
    for path in (published["tmp"] / "storage").rglob("*"):  # step storage holds raw records
        assert path.stat().st_mode & 0o077 == 0, path
