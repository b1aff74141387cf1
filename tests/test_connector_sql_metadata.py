"""The `sql` source's metadata, steps and statements without a server: what `dmetl validate`
refuses, how shards × ranges become steps, the range conditions, and the error masking."""

from __future__ import annotations

import pytest

from etl_assets.errors import MetadataError
from etl_assets.extract.sql import plan
from etl_assets.extract.sql.dialects import DIALECTS, select_expression
from etl_assets.extract.sql.messages import CONVERSION, reader_message, server_message
from etl_assets.extract.units import extraction_units
from etl_assets.metadata import SqlPartition
from etl_assets.metadata.loader import load_module
from etl_assets.orchestration.factory import build_module
from tests.helpers import CONTEXT, write_module


def _doc(extract: dict, connections: list[dict] | None = None) -> dict:
    return {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": "m",
        "connections": connections
        if connections is not None
        else [
            {"name": "crm", "type": "mysql", "urlEnv": "CRM_URL"},
            {"name": "eu", "type": "mysql", "options": {"host": "db.eu", "user": "etl"}},
            {"name": "bus", "type": "kafka", "options": {"bootstrap_servers": "k:9092"}},
        ],
        "tables": [{"name": "t", "columns": [{"name": "id", "dataType": "integer"}]}],
        "collection": [{"table": "t", "source": "s", "extract": extract}],
    }


def _problems(tmp_path, doc: dict) -> str:
    with pytest.raises(MetadataError) as err:
        load_module(write_module(tmp_path / "m", doc))
    return str(err.value)


@pytest.mark.parametrize(
    ("extract", "expected"),
    [
        ({"type": "sql", "connection": "bus", "query": "SELECT 1"},
         "collection[0].extract.connection: connection 'bus' is kafka, expected mysql or postgres"),
        ({"type": "sql", "query": "SELECT 1"}, "exactly one of connection or shards"),
        ({"type": "sql", "shards": ["crm", "crm"], "query": "SELECT 1"},
         "collection[0].extract.shards[1]: shard 'crm' is listed twice"),
        ({"type": "sql", "connection": "crm", "query": "q",
          "partition": {"column": "id", "count": 4}}, "needs min and max"),
        ({"type": "sql", "connection": "crm", "query": "q",
          "partition": {"column": "id", "count": 4, "min": 0, "max": 9, "bounds": [5]}},
         "exactly one of bounds or count"),
        ({"type": "sql", "connection": "crm", "query": "q",
          "partition": {"column": "id", "bounds": [5, 5]}}, "strictly ascending"),
        ({"type": "sql", "connection": "crm", "query": "q",
          "partition": {"column": "id", "bounds": [1, "2024-01-01"]}}, "not a mix"),
        ({"type": "sql", "connection": "crm", "query": "q",
          "partition": {"column": "id", "bounds": ["2024-01-01'; DROP TABLE t; --"]}},
         "is not an ISO date"),
        ({"type": "sql", "connection": "crm", "query": "q",
          "partition": {"column": "id; DROP", "count": 2, "min": 0, "max": 9}},
         "collection[0].extract.partition.column"),
    ],
)  # fmt: skip
def test_validate_refuses_bad_sql_sources(tmp_path, extract, expected):
    assert expected in _problems(tmp_path, _doc(extract))


def test_a_mysql_connection_needs_host_and_user_without_url(tmp_path):
    doc = _doc(
        {"type": "sql", "connection": "crm", "query": "SELECT 1"},
        [{"name": "crm", "type": "mysql", "options": {"port": 3307}}],
    )
    assert "a mysql connection needs urlEnv or options.host and options.user" in _problems(
        tmp_path, doc
    )


def test_shards_times_ranges_are_the_steps(tmp_path):
    extract = {
        "type": "sql",
        "shards": ["crm", "eu"],
        "query": "SELECT id FROM t",
        "partition": {"column": "id", "bounds": [100, 200]},
    }
    loaded = load_module(write_module(tmp_path / "m", _doc(extract)))
    units = extraction_units(loaded.model)
    assert [(u.name, u.shard, u.partition) for u in units] == [
        (f"t__s__{shard}__p{i}", shard, i) for shard in ("crm", "eu") for i in range(3)
    ]
    assert {u.entry.extract.connection for u in units} == {"crm", "eu"}


def test_ranges_cover_every_value_once():
    mysql = DIALECTS["mysql"]
    part = SqlPartition(column="id", count=3, min=0, max=59)
    assert part.split_points() == [20, 40]
    assert [plan.range_predicate(mysql, part, i) for i in range(3)] == [
        "(dm_q.`id` IS NULL OR dm_q.`id` < 20)",
        "dm_q.`id` >= 20 AND dm_q.`id` < 40",
        "dm_q.`id` >= 40",
    ]
    dates = SqlPartition(column="day", bounds=["2024-01-01"])
    pg = DIALECTS["postgres"]
    assert plan.range_predicate(pg, dates, 1) == "dm_q.\"day\" >= '2024-01-01'"
    assert plan.range_label(dates, 0) == "range 1 of 2 (day < '2024-01-01' or day is null)"


def test_lossy_types_are_cast_to_text_in_the_read_statement():
    mysql, pg = DIALECTS["mysql"], DIALECTS["postgres"]
    assert select_expression(mysql, "amount", 246) == "CAST(dm_q.`amount` AS CHAR) AS `amount`"
    assert select_expression(mysql, "id", 8) == "dm_q.`id` AS `id`"
    assert select_expression(mysql, "b`x", 16) == "CAST(dm_q.`b``x` AS UNSIGNED) AS `b``x`"
    assert select_expression(pg, "at", 1184) == 'CAST(dm_q."at" AS text) AS "at"'
    statement = plan.read_statement(mysql, "SELECT id FROM t;", ["dm_q.`id` AS `id`"], "x = 1")
    assert statement == "SELECT dm_q.`id` AS `id` FROM (SELECT id FROM t) AS dm_q WHERE x = 1"


def test_messages_keep_the_statement_and_mask_values():
    sql = "SELECT * FROM (SELECT name FROMM patients) AS dm_q LIMIT 0"
    syntax = (
        "MySqlError { ERROR 1064 (42000): You have an error in your SQL syntax; check the manual"
        " for the right syntax to use near 'FROMM patients) AS dm_q LIMIT 0' at line 1 }"
    )
    assert "near 'FROMM patients) AS dm_q LIMIT 0'" in server_message(syntax, sql)
    value = 'db error: ERROR: invalid input syntax for type integer: "Ann Smith"'
    assert server_message(value, "SELECT CAST(name AS int) FROM p") == (
        'invalid input syntax for type integer: "…"'
    )
    panic = (
        "Could not retrieve `core::option::Option<chrono::naive::time::NaiveTime>`: Couldn't"
        " convert the value `Time(\"'-838:59:59'\")` to a desired type"
    )
    assert reader_message("PanicException", panic, "SELECT tm FROM t") == CONVERSION
    missing = "ERROR 1146: Table 'shop.orders' doesn't exist"
    assert server_message(missing, "SELECT * FROM orders", "shop") == missing


def test_changing_the_ranges_changes_the_code_version(tmp_path):
    """The canonical hash (each asset's code version) sees the partition: the UI marks the
    extract assets changed when the split points change."""
    hashes = set()
    for i, partition in enumerate(
        [
            {"column": "id", "bounds": [100, 200]},
            {"column": "id", "bounds": [100, 300]},
            {"column": "id", "count": 2, "min": 0, "max": 9},
            {"column": "id", "count": 3, "min": 0, "max": 9},
        ]
    ):
        extract = {"type": "sql", "connection": "crm", "query": "q", "partition": partition}
        hashes.add(load_module(write_module(tmp_path / f"{i}" / "m", _doc(extract))).hash)
    assert len(hashes) == 4


def test_the_extract_assets_show_the_database_as_their_kind(tmp_path):
    extract = {"type": "sql", "connection": "crm", "query": "q",
               "partition": {"column": "id", "bounds": [10]}}  # fmt: skip
    built = build_module(load_module(write_module(tmp_path / "m", _doc(extract))))
    specs = [spec for asset in built.assets for spec in asset.specs]
    kinds = {s.key.path[-1]: s.kinds for s in specs if s.key.path[1] == "extract"}
    assert kinds == {
        "t__s__p0": {"extract", "mysql", "parquet"},
        "t__s__p1": {"extract", "mysql", "parquet"},
    }
