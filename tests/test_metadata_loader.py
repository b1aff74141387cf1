"""The metadata loader: valid modules load with a canonical hash; invalid ones say where and what."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from etl_assets.errors import MetadataError
from etl_assets.metadata.loader import discover, load_module
from tests.conftest import EXAMPLES
from tests.helpers import CONTEXT, write_module

CLINIC = EXAMPLES / "clinic"


def minimal(name: str = "shop") -> dict:
    return {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": name,
        "tables": [
            {
                "name": "items",
                "primaryKey": ["item_id"],
                "onKeyConflict": "dropAll",
                "columns": [
                    {"name": "item_id", "dataType": "integer"},
                    {"name": "price", "dataType": "number"},
                ],
            },
            {
                "name": "sales",
                "columns": [
                    {"name": "item_id", "dataType": "integer",
                     "foreignKey": {"table": "items", "column": "item_id"}},
                    {"name": "day", "dataType": "date"},
                ],
            },
        ],
        "collection": [
            {"table": "items", "source": "csv", "extract": {"type": "file", "path": "items.csv"}},
            {"table": "sales", "source": "csv", "extract": {"type": "file", "path": "sales.csv"}},
        ],
    }  # fmt: skip


def errors_of(tmp_path: Path, doc: dict, name: str = "shop") -> str:
    folder = write_module(tmp_path / name, doc)
    with pytest.raises(MetadataError) as info:
        load_module(folder)
    return str(info.value)


def test_example_module_loads_with_every_section():
    loaded = load_module(CLINIC)
    model = loaded.model
    assert model.name == "clinic"
    assert [t.name for t in model.tables] == ["wards", "patients", "visits"]
    assert model.table("patients").privacy.models[0].k == 3
    assert {e.extract.type for e in model.collection} == {"file", "script"}
    assert len(loaded.hash) == 64


def clinic_variant(root: Path, doc: dict, file: str = "module.jsonld") -> Path:
    """The clinic module with `doc` as its metadata (data and scripts linked, not copied)."""
    folder = root / "clinic"
    folder.mkdir(parents=True)
    for sub in ("data", "scripts"):
        (folder / sub).symlink_to(CLINIC / sub)
    text = yaml.safe_dump(doc, sort_keys=True) if file.endswith(".yaml") else json.dumps(doc)
    (folder / file).write_text(text)
    return folder


def test_hash_ignores_key_order_and_format_but_not_meaning(tmp_path):
    doc = json.loads((CLINIC / "module.jsonld").read_text())
    base = load_module(CLINIC).hash

    reordered = dict(reversed(list(doc.items())))
    assert load_module(clinic_variant(tmp_path / "a", reordered)).hash == base
    assert load_module(clinic_variant(tmp_path / "y", doc, "module.yaml")).hash == base

    changed = copy.deepcopy(doc)
    changed["tables"][0]["columns"][2]["range"]["max"] = 150
    assert load_module(clinic_variant(tmp_path / "c", changed)).hash != base

    # column order is part of the meaning (lists are ordered in the context)
    swapped = copy.deepcopy(doc)
    cols = swapped["tables"][0]["columns"]
    cols[0], cols[1] = cols[1], cols[0]
    assert load_module(clinic_variant(tmp_path / "s", swapped)).hash != base


BROKEN = [
    (
        lambda d: d["tables"][0]["columns"][1].update(range={"min": 0}),
        "tables[0].columns[1].range: a range needs onViolation (drop | clamp)",
    ),
    (
        lambda d: d["tables"][0].pop("onKeyConflict"),
        "tables[0]: a primaryKey needs onKeyConflict (sourcePriority | dropAll | regenerate)",
    ),
    (
        lambda d: d["tables"][1]["columns"][0]["foreignKey"].update(table="stock"),
        "tables[1].columns[0].foreignKey.table: unknown table 'stock'; expected one of items, sales",
    ),
    (
        lambda d: d["tables"][1]["columns"][0]["foreignKey"].update(column="sku"),
        "tables[1].columns[0].foreignKey.column: table 'items' has no column 'sku'",
    ),
    (
        lambda d: d["tables"][0]["columns"][1].update(empty={"strategy": "fill", "value": "n/a"}),
        "tables[0].columns[1].empty.value: fill value 'n/a' is not a number",
    ),
    (
        lambda d: d["tables"][0]["columns"][0].update(dataType="int"),
        "tables[0].columns[0].dataType: Input should be 'string', 'integer', 'number', 'boolean',"
        " 'date' or 'datetime', got 'int'",
    ),
    (
        lambda d: d["tables"][0].update(colums=[]),
        "tables[0].colums: unknown key (see docs/datamodule-format.md)",
    ),
    (
        lambda d: d["collection"][0]["extract"].update(type="ftp"),
        "collection[0].extract: type 'ftp' is not one of 'file', 'script'",
    ),
    (
        lambda d: d["collection"][1].update(table="returns"),
        "collection[1].table: unknown table 'returns'",
    ),
    (lambda d: d.update(version="1.0"), "version: version must be MAJOR.MINOR.PATCH, got '1.0'"),
    (lambda d: d.update(name="other"), "name: module name 'other' must equal its folder 'shop'"),
    (
        lambda d: d.update({"@context": "https://example.org/ctx"}),
        "@context: expected 'https://w3id.org/datamodule-etl/context/v1'",
    ),
    (
        lambda d: d["tables"][0]["columns"].append(
            {
                "name": "x",
                "dataType": "integer",
                "foreignKey": {"table": "sales", "column": "item_id"},
            }
        ),
        "tables: foreign keys form a cycle: items -> sales -> items",
    ),
    (
        lambda d: d.update(schedule={"cron": "every day"}),
        "schedule.cron: not a cron expression: 'every day'",
    ),
]


@pytest.mark.parametrize(("breakage", "expected"), BROKEN)
def test_broken_metadata_names_file_path_and_expectation(tmp_path, breakage, expected):
    doc = minimal()
    breakage(doc)
    message = errors_of(tmp_path, doc)
    assert (
        message.startswith(str(tmp_path / "shop" / "module.jsonld")) or "module.jsonld: " in message
    )
    assert expected in message, message


def test_every_problem_is_reported_at_once(tmp_path):
    doc = minimal()
    doc["tables"][0]["columns"][1]["range"] = {"min": 0}
    doc["collection"][0]["priority"] = "high"
    message = errors_of(tmp_path, doc)
    assert "tables[0].columns[1].range" in message
    assert "collection[0].priority" in message


def test_not_json_gives_line_and_column(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "module.jsonld").write_text('{"name": "shop",\n  "tables": [}\n')
    with pytest.raises(MetadataError, match=r"module.jsonld: not valid JSON at line 2 column"):
        load_module(folder)


def test_one_invalid_module_does_not_stop_the_others(tmp_path):
    write_module(tmp_path / "shop", minimal())
    broken = minimal("broken")
    broken["tables"][0]["columns"][1]["range"] = {"max": 3}
    write_module(tmp_path / "broken", broken)
    found = discover(tmp_path)
    assert [m.name for m in found.modules] == ["shop"]
    assert len(found.errors) == 1
    assert "broken/module.jsonld: tables[0].columns[1].range" in str(found.errors[0])


def test_missing_script_is_reported(tmp_path):
    doc = minimal()
    doc["collection"][0]["extract"] = {"type": "script", "path": "scripts/get.py"}
    assert "collection[0].extract.path: script not found: scripts/get.py" in errors_of(
        tmp_path, doc
    )
