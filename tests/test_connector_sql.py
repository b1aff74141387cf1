"""The `sql` source against the machine's MariaDB (and PostgreSQL through the same path):
shards × ranges as parallel steps published to PostgreSQL, types, NULL vs '', read-only
sessions, and errors that name the connection but never a secret or a data value."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from etl_assets.connections import ConnectionError_, ResolvedConnection, sql_url
from etl_assets.errors import ExtractionError
from etl_assets.extract.context import ExtractContext
from etl_assets.extract.entry import extract_entry
from etl_assets.extract.sql import read_query
from etl_assets.extract.sql.dialects import DIALECTS
from etl_assets.extract.sql.run import read_arrow
from etl_assets.extract.units import extraction_units
from etl_assets.metadata import SqlPartition
from etl_assets.metadata.loader import load_module
from resources.deployment import SecretsResource
from resources.io_manager import ParquetIOManager
from tests import servers
from tests.helpers import CONTEXT, materializations, run_version, write_module

pytestmark = pytest.mark.integration
mysql_server_url = servers.mysql_server_url
mysql_url = servers.mysql_url
mysql_shards = servers.mysql_shards

QUERY = "SELECT patient_id, name, weight, admitted, seen_at, active FROM patients"


def _module(name: str, shard_b_port: int = 3306) -> dict:
    """Two MariaDB shards (one by URL, one by options), each read in three ranges of id."""
    return {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": name,
        "version": "1.0.0",
        "autoUpload": True,
        "retry": {"maxRetries": 0},
        "connections": [
            {"name": "shard_a", "type": "mysql", "urlEnv": "DM_TEST_MY_SHARD_A"},
            {
                "name": "shard_b",
                "type": "mysql",
                "options": {
                    "host": "127.0.0.1",
                    "port": shard_b_port,
                    "user": "root",
                    "dbname": "placeholder",
                },
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
                    {"name": "seen_at", "dataType": "datetime"},
                    {"name": "active", "dataType": "boolean"},
                ],
            }
        ],
        "collection": [
            {
                "table": "patients",
                "source": "his",
                "extract": {
                    "type": "sql",
                    "shards": ["shard_a", "shard_b"],
                    "query": QUERY,
                    "partition": {"column": "patient_id", "count": 3, "min": 0, "max": 59},
                },
            }
        ],
    }


def _seed(url: str, ids: range) -> None:
    """Patients `ids`: every third name NULL, every third '', one zero date (a legacy value)."""
    with servers.mysql_connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")  # zero dates, as a legacy server allowed them
        cur.execute(
            "CREATE TABLE patients (patient_id INT PRIMARY KEY, name VARCHAR(40) NULL,"
            " weight DECIMAL(8,2), admitted DATE, seen_at DATETIME(6), active BOOLEAN)"
            " CHARACTER SET utf8mb4"
        )
        rows = [
            (
                i,
                None if i % 3 == 1 else "" if i % 3 == 0 else f"p{i}",
                i * 1.5,
                "0000-00-00" if i == ids.start + 4 else f"2024-01-{1 + i % 28:02d}",
                f"2024-02-29 13:14:{i % 60:02d}.123456",
                i % 2,
            )
            for i in ids
        ]
        cur.executemany("INSERT INTO patients VALUES (%s, %s, %s, %s, %s, %s)", rows)


@pytest.fixture
def sharded(tmp_path, mysql_shards, monkeypatch):
    a, b = mysql_shards
    _seed(a, range(0, 30))
    _seed(b, range(30, 50))
    monkeypatch.setenv("DM_TEST_MY_SHARD_A", a)
    doc = _module("sqlmod")
    doc["connections"][1]["options"]["dbname"] = b.rsplit("/", 1)[1]
    return write_module(tmp_path / "sqlmod", doc)


def test_shards_and_ranges_are_steps_published_to_postgres(sharded, resources, pg_url):
    result = run_version(sharded, "1.0.0", resources, dg.DagsterInstance.ephemeral())
    assert result.success
    steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    expected = {f"sqlmod__extract__patients__his__{s}__p{i}" for s in ("shard_a", "shard_b")
                for i in range(3)}  # fmt: skip
    assert expected <= steps

    io: ParquetIOManager = resources["dm_io_manager"]
    counts = {}
    for shard in ("shard_a", "shard_b"):
        for i in range(3):
            key = dg.AssetKey(["sqlmod", "extract", f"patients__his__{shard}__p{i}"])
            df = io.read(key, "1.0.0")
            counts[(shard, i)] = len(df)
            assert set(df["_dm_shard"]) <= {shard}
    # ranges of 0..59 in three: [<20 or null], [20, 40), [>=40]
    assert counts == {("shard_a", 0): 20, ("shard_a", 1): 10, ("shard_a", 2): 0,
                      ("shard_b", 0): 0, ("shard_b", 1): 10, ("shard_b", 2): 10}  # fmt: skip
    first = io.read(dg.AssetKey(["sqlmod", "extract", "patients__his__shard_a__p0"]), "1.0.0")
    assert first.loc[first.patient_id == 3, "name"].iloc[0] == ""
    assert first.loc[first.patient_id == 1, "name"].isna().all()
    assert first.loc[first.patient_id == 4, "admitted"].iloc[0] == "0000-00-00"

    mats = materializations(result)
    assert mats[("sqlmod", "extract", "patients__his__shard_b__p2")]["dm/partition"] == 2
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT count(*), count(DISTINCT patient_id), count(*) FILTER (WHERE name IS NULL),"
            " count(*) FILTER (WHERE name = ''), sum(weight), min(admitted),"
            " count(*) FILTER (WHERE active), max(seen_at)::text FROM dm_sqlmod.patients"
        ).fetchone()
        quarantined = conn.execute(
            'SELECT rule, reason, "column" FROM dm_sqlmod__restricted.quarantine'
        ).fetchall()
    # the two zero dates (ids 4 and 34) are rejected by the type rule, not lost or shifted
    assert rows[:4] == (48, 48, 15, 17)
    assert float(rows[4]) == pytest.approx(1.5 * (sum(range(50)) - 4 - 34))
    assert str(rows[5]) == "2024-01-01" and rows[6] == 25
    assert rows[7] == "2024-02-29 13:14:49.123456"
    assert sorted(quarantined) == [("type", "not_date", "admitted")] * 2


def test_values_arrive_exactly_null_and_empty_apart(mysql_url):
    with servers.mysql_connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+02:00'")  # the writer's zone must not matter
        cur.execute(
            "CREATE TABLE t (id INT, txt TEXT, big BIGINT, ubig BIGINT UNSIGNED,"
            " amount DECIMAL(38,9), day DATE, at DATETIME(6), stamp TIMESTAMP(6) NULL,"
            " flag BOOLEAN, bits BIT(8), tm TIME, raw VARBINARY(4), js JSON, kind ENUM('a','b'),"
            " f DOUBLE) CHARACTER SET utf8mb4"
        )
        cur.execute(
            "INSERT INTO t VALUES (1, '', 9223372036854775807, 18446744073709551615,"
            " 12345678901234567890.123456789, '2024-02-29', '2024-02-29 13:14:15.123456',"
            " '2024-02-29 13:14:15.123456', TRUE, b'10000001', '-838:59:59', x'00ff10', '[1]',"
            " 'b', -1.5), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
            " NULL, NULL, NULL), (3, 'Grüße 😀', -9223372036854775808, 0, -0.000000001,"
            " '1000-01-01', '1970-01-01 00:00:00', '1970-01-01 02:00:01', FALSE, b'0', '00:00:00',"
            " '', '{}', 'a', 0)"
        )
    table = read_query("mysql", mysql_url, "SELECT * FROM t ORDER BY id", "MySQL connection 't'")
    got = {c: table[c].to_pylist() for c in table.schema.names}
    assert got["txt"] == ["", None, "Grüße 😀"]
    assert got["big"] == [2**63 - 1, None, -(2**63)] and got["ubig"] == [2**64 - 1, None, 0]
    assert got["amount"] == ["12345678901234567890.123456789", None, "-0.000000001"]
    assert got["day"] == ["2024-02-29", None, "1000-01-01"]
    assert got["at"] == ["2024-02-29 13:14:15.123456", None, "1970-01-01 00:00:00.000000"]
    # TIMESTAMP is an instant: read at UTC (written at +02:00)
    assert got["stamp"] == ["2024-02-29 11:14:15.123456", None, "1970-01-01 00:00:01.000000"]
    assert got["flag"] == [1, None, 0] and got["bits"] == [129, None, 0]
    assert got["tm"] == ["-838:59:59", None, "00:00:00"]
    assert got["raw"] == ["00ff10", None, ""]
    assert got["js"] == ["[1]", None, "{}"] and got["kind"] == ["b", None, "a"]
    assert got["f"] == [-1.5, None, 0.0]


def test_the_session_is_read_only(mysql_url):
    with servers.mysql_connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE log (n INT)")
        cur.execute("CREATE TABLE src (id INT)")
        cur.execute("INSERT INTO src VALUES (1), (2)")
        cur.execute(
            "CREATE FUNCTION bump() RETURNS INT MODIFIES SQL DATA"
            " BEGIN INSERT INTO log VALUES (1); RETURN 1; END"
        )
    # MariaDB calls bump() already for the probe (LIMIT 0): its transaction is read-only
    with pytest.raises(ExtractionError, match="the query failed.*READ ONLY") as err:
        read_query("mysql", mysql_url, "SELECT id, bump() AS b FROM src", "MySQL connection 'crm'")
    assert not err.value.retryable and "MySQL connection 'crm'" in str(err.value)
    # and connectorx's session, which reads the rows, is read-only too
    mysql = DIALECTS["mysql"]
    with pytest.raises(ExtractionError, match="reading the result failed.*READ ONLY"):
        read_arrow(mysql_url, "SELECT id, bump() AS b FROM src", mysql.pre_execution, "crm")
    with servers.mysql_connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM log")
        assert cur.fetchone() == (0,)


def test_a_value_connectorx_cannot_convert_is_not_shown(mysql_url, capfd):
    """Read without our casts, connectorx panics on TIME -838:59:59 and prints the value; the
    reader process keeps it: neither the error nor the step's output shows it."""
    with servers.mysql_connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (tm TIME)")
        cur.execute("INSERT INTO t VALUES ('-838:59:59')")
    mysql = DIALECTS["mysql"]
    with pytest.raises(ExtractionError, match="cannot convert a value") as err:
        read_arrow(mysql_url, "SELECT tm FROM t", mysql.pre_execution, "MySQL connection 'x'")
    out, errout = capfd.readouterr()
    assert "838" not in str(err.value) and "838" not in out + errout
    assert not err.value.retryable and "838:59:59" in err.value.restricted_detail


def test_postgres_through_the_sql_path_masks_values_in_server_errors(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE p (id int, name text, amount numeric(30,10), at timestamptz)")
        conn.execute(
            "INSERT INTO p VALUES (1, 'Ann Secretvalue', 12345678901234567890.0123456789,"
            " '2024-02-29 13:14:15+02'), (2, '', NULL, NULL), (3, NULL, -1, NULL)"
        )
    pg = sql_url(ResolvedConnection(name="crm", type="postgres", url=pg_url))
    part = SqlPartition(column="id", bounds=[2])
    rows = [
        read_query("postgres", pg, "SELECT * FROM p", "pg", part, i).to_pylist() for i in (0, 1)
    ]
    assert [r["id"] for r in rows[0]] == [1] and [r["id"] for r in rows[1]] == [2, 3]
    assert rows[0][0]["amount"] == "12345678901234567890.0123456789"
    assert rows[0][0]["at"] == "2024-02-29 11:14:15+00"
    assert [r["name"] for r in rows[1]] == ["", None]
    with pytest.raises(ExtractionError) as err:
        read_query("postgres", pg, "SELECT CAST(name AS int) AS n FROM p", "PostgreSQL 'crm'")
    assert "Secretvalue" not in str(err.value) and "invalid input syntax" in str(err.value)
    # the full text is for the restricted zone (the extract step writes it there)
    assert "Secretvalue" in err.value.restricted_detail
    with pytest.raises(ExtractionError, match='syntax error at or near "FROMM"'):
        read_query("postgres", pg, "SELECT * FROMM p", "PostgreSQL 'crm'")


def _unit(folder, shard: str, index: int = 0):
    loaded = load_module(folder)
    unit = next(
        u for u in extraction_units(loaded.model) if u.shard == shard and u.partition == index
    )
    context = ExtractContext(
        module=loaded.model,
        folder=folder,
        secrets=SecretsResource(),
        shard=unit.shard,
        partition=unit.partition,
    )
    return unit.entry, context


def test_a_missing_secret_names_the_connection_and_the_variable(tmp_path, monkeypatch):
    doc = _module("secretmod")
    doc["connections"][1]["secretEnv"] = {"password": "DM_TEST_MY_SHARD_B_PASSWORD"}
    monkeypatch.setenv("DM_TEST_MY_SHARD_A", "mysql://root:hunter2@127.0.0.1:3306/x")
    monkeypatch.delenv("DM_TEST_MY_SHARD_B_PASSWORD", raising=False)
    folder = write_module(tmp_path / "secretmod", doc)
    entry, context = _unit(folder, "shard_b")
    with pytest.raises(ConnectionError_, match="'shard_b'.*DM_TEST_MY_SHARD_B_PASSWORD") as err:
        extract_entry(entry, folder, context)
    assert not err.value.retryable and "hunter2" not in str(err.value)


def test_an_unreachable_server_is_retryable_and_shows_no_password(tmp_path, monkeypatch):
    port = servers.free_port()  # nothing listens there
    doc = _module("downmod", shard_b_port=port)
    doc["connections"][1]["secretEnv"] = {"password": "DM_TEST_MY_SHARD_B_PASSWORD"}
    monkeypatch.setenv("DM_TEST_MY_SHARD_A", "mysql://root@127.0.0.1:3306/x")
    monkeypatch.setenv("DM_TEST_MY_SHARD_B_PASSWORD", "hunter2-pw")
    folder = write_module(tmp_path / "downmod", doc)
    entry, context = _unit(folder, "shard_b", 2)
    with pytest.raises(ExtractionError) as err:
        extract_entry(entry, folder, context)
    text = str(err.value)
    assert err.value.retryable and "hunter2-pw" not in text
    assert "MySQL/MariaDB connection 'shard_b', range 3 of 3" in text
    assert f"127.0.0.1:{port} after 4 attempts" in text


def test_a_refused_login_fails_at_once_without_the_password(mysql_url):
    wrong = mysql_url.replace("mysql://root@", "mysql://root:hunter2-pw@", 1)
    with pytest.raises(ExtractionError, match="refused the login of user 'root'") as err:
        read_query("mysql", wrong, "SELECT 1", "MySQL/MariaDB connection 'crm'")
    assert not err.value.retryable and "hunter2-pw" not in str(err.value)


def test_a_failing_step_keeps_the_value_out_of_the_event_log(
    tmp_path, resources, pg_url, monkeypatch
):
    """A server error that quotes a value fails the run with the value masked in every event;
    the full text is in the restricted zone of the outbox."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE p (patient_id int, name text)")
        conn.execute("INSERT INTO p VALUES (1, 'Ann Secretvalue')")
    monkeypatch.setenv("DM_TEST_SQL_PG", pg_url)
    doc = _module("failmod")
    doc["connections"] = [{"name": "his", "type": "postgres", "urlEnv": "DM_TEST_SQL_PG"}]
    doc["tables"][0]["columns"] = doc["tables"][0]["columns"][:2]
    doc["collection"][0]["extract"] = {
        "type": "sql",
        "connection": "his",
        "query": "SELECT CAST(name AS int) AS patient_id, name FROM p",
    }
    folder = write_module(tmp_path / "failmod", doc)
    result = run_version(folder, "1.0.0", resources, dg.DagsterInstance.ephemeral())
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = failures[0].event_specific_data.error.message
    assert "PostgreSQL connection 'his': reading the result failed" in text
    assert "kept in the restricted zone" in text
    assert not any("Secretvalue" in str(e) for e in result.all_events)
    kept = list((tmp_path / "outbox").rglob("*.stderr.txt"))
    assert len(kept) == 1 and "Secretvalue" in kept[0].read_text()
