"""PostgreSQL source (with shards) and sink (binary COPY, append) against the machine's server."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import psycopg
import pyarrow as pa
import pytest

from etl_assets.connections import ConnectionError_, resolve_connection
from etl_assets.metadata.loader import load_module
from resources.deployment import SecretsResource
from resources.io_manager import ParquetIOManager
from tests import servers
from tests.helpers import CONTEXT, run_version, write_module

pytestmark = pytest.mark.integration
pg_shards = servers.pg_shards  # two extra databases as shards


def _module(name: str, mode: str = "snapshot") -> dict:
    return {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": name,
        "version": "1.0.0",
        "autoUpload": True,
        "retry": {"maxRetries": 0},
        "connections": [
            {"name": "shard_a", "type": "postgres", "urlEnv": "DM_TEST_SHARD_A"},
            {
                "name": "shard_b",
                "type": "postgres",
                "urlEnv": "DM_TEST_SHARD_B",
                "secretEnv": {"password": "DM_TEST_SHARD_B_PASSWORD"},
            },
        ],
        "tables": [
            {
                "name": "patients",
                "primaryKey": ["patient_id"],
                "onKeyConflict": "dropAll",
                "columns": [
                    {"name": "patient_id", "dataType": "integer", "nullable": False},
                    {"name": "name", "dataType": "string"},
                    {"name": "weight", "dataType": "number"},
                    {"name": "admitted", "dataType": "date"},
                ],
            }
        ],
        "collection": [
            {
                "table": "patients",
                "source": "his",
                "extract": {
                    "type": "postgres",
                    "shards": ["shard_a", "shard_b"],
                    "query": "SELECT patient_id, name, weight, admitted FROM patients",
                },
            }
        ],
        "upload": {"sink": {"type": "postgres", "mode": mode}},
    }


def _seed(url: str, ids: range) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS patients"
            " (patient_id int, name text, weight numeric, admitted date)"
        )
        conn.execute(
            "INSERT INTO patients SELECT i, CASE WHEN i %% 3 = 0 THEN '' WHEN i %% 3 = 1"
            " THEN NULL ELSE 'p' || i END, i * 1.5, DATE '2024-01-01' + i"
            " FROM generate_series(%s::int, %s::int) AS i",
            (ids.start, ids.stop - 1),
        )


@pytest.fixture
def sharded(tmp_path, pg_shards, monkeypatch):
    a, b = pg_shards
    _seed(a, range(0, 30))
    _seed(b, range(30, 50))
    monkeypatch.setenv("DM_TEST_SHARD_A", a)
    monkeypatch.setenv("DM_TEST_SHARD_B", b)
    monkeypatch.setenv("DM_TEST_SHARD_B_PASSWORD", "not-used-by-trust-auth")
    return tmp_path


def test_sharded_source_one_step_per_shard_published_snapshot(sharded, resources, pg_url):
    folder = write_module(sharded / "shardmod", _module("shardmod"))
    result = run_version(folder, "1.0.0", resources, dg.DagsterInstance.ephemeral())
    assert result.success
    steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert {
        "shardmod__extract__patients__his__shard_a",
        "shardmod__extract__patients__his__shard_b",
    } <= steps

    io: ParquetIOManager = resources["dm_io_manager"]
    a = io.read(dg.AssetKey(["shardmod", "extract", "patients__his__shard_a"]), "1.0.0")
    b = io.read(dg.AssetKey(["shardmod", "extract", "patients__his__shard_b"]), "1.0.0")
    assert len(a) == 30 and set(a["_dm_shard"]) == {"shard_a"}
    assert len(b) == 20 and set(b["_dm_shard"]) == {"shard_b"}
    # NULL stays null and '' stays empty through COPY out
    assert a.loc[a.patient_id == 3, "name"].iloc[0] == ""
    assert a.loc[a.patient_id == 1, "name"].isna().all()

    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE name IS NULL),"
            " count(*) FILTER (WHERE name = '') FROM dm_shardmod.patients"
        ).fetchone()
    assert rows == (50, 17, 17)


def test_append_rerun_of_unchanged_version_inserts_nothing(sharded, resources, pg_url):
    folder = write_module(sharded / "appendmod", _module("appendmod", mode="append"))
    instance = dg.DagsterInstance.ephemeral()
    assert run_version(folder, "1.0.0", resources, instance).success
    again = run_version(folder, "1.0.1", resources, instance)
    assert again.success
    inserted = [
        e.event_specific_data.materialization.metadata["dm/inserted_rows"].value
        for e in again.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key.path[1] == "upload"
    ]
    assert inserted == [0]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM dm_appendmod.patients").fetchone()[0] == 50


def test_binary_copy_keeps_types_nulls_and_empty_strings(pg_url):
    from etl_assets.publish.postgres import publish

    df = pd.DataFrame(
        {
            "i": pd.array([1, None, 3], dtype="int32[pyarrow]"),
            "f": pd.array([1.5, None, float("nan")], dtype="float32[pyarrow]"),
            "s": pd.array(["a", "", None], dtype="string[pyarrow]"),
            "b": pd.array([True, None, False], dtype="bool[pyarrow]"),
            "d": pd.to_datetime(["2024-01-02", None, "1999-12-31"]).date,
            "ts": pd.to_datetime(
                ["2024-01-02 03:04:05.123456", None, "1970-01-01 00:00:00.000000"], utc=True
            ),
        }
    )
    df["d"] = df["d"].astype(pd.ArrowDtype(pa.date32()))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        publish(
            conn,
            module="types",
            version="1.0.0",
            schema="dm_types",
            tables={"t": df},
            quarantine=None,
            metadata_hash="x",
        )
        rows = conn.execute("SELECT i, f, s, b, d, ts FROM dm_types.t ORDER BY i NULLS LAST")
        got = rows.fetchall()
    assert got[0][:4] == (1, 1.5, "a", True) and str(got[0][4]) == "2024-01-02"
    assert got[0][5].isoformat().startswith("2024-01-02T03:04:05.123456")
    assert got[2][:4] == (None, None, "", None)
    assert got[1][0] == 3 and got[1][2] is None and got[1][3] is False


def test_missing_secret_names_connection_and_variable_not_value(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_TEST_SHARD_A", "postgresql://u:hunter2@127.0.0.1/x")
    monkeypatch.setenv("DM_TEST_SHARD_B", "postgresql://u@127.0.0.1/y")
    monkeypatch.delenv("DM_TEST_SHARD_B_PASSWORD", raising=False)
    loaded = load_module(write_module(tmp_path / "secretmod", _module("secretmod")))
    with pytest.raises(ConnectionError_, match="'shard_b'.*DM_TEST_SHARD_B_PASSWORD"):
        resolve_connection(loaded.model, "shard_b", SecretsResource().get)
    monkeypatch.setenv("DM_TEST_SHARD_B_PASSWORD", "hunter3")
    a = resolve_connection(loaded.model, "shard_a", SecretsResource().get)
    b = resolve_connection(loaded.model, "shard_b", SecretsResource().get)
    assert "hunter2" not in repr(a) and "hunter3" not in repr(b) and "***" in repr(b)


def test_a_cast_failing_mid_copy_names_the_error_not_the_value(pg_url):
    from etl_assets.errors import ExtractionError
    from etl_assets.extract.postgres import query_to_arrow

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS dm_cast_src")
        conn.execute("CREATE TABLE dm_cast_src (v text)")
        conn.execute("INSERT INTO dm_cast_src VALUES ('1'), ('Annabel Quist')")
        with pytest.raises(ExtractionError) as info:
            query_to_arrow(conn, "SELECT v::integer AS v FROM dm_cast_src", "connection 'src'")
        conn.execute("DROP TABLE dm_cast_src")
    shown = str(info.value)
    assert shown.startswith("connection 'src': the query failed:") and "integer" in shown
    assert "Annabel" not in shown
    assert "Annabel" in (info.value.restricted_detail or "")
