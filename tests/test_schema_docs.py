"""The JSON Schema is generated from the model and committed; the format doc covers every key."""

from __future__ import annotations

import json
import re

import jsonschema
import yaml

import etl_assets.metadata as model
from etl_assets.metadata.base import _Model
from etl_assets.metadata.schema import render
from tests.conftest import EXAMPLES, ROOT

SCHEMA = ROOT / "docs" / "datamodule.schema.json"
DOC = ROOT / "docs" / "datamodule-format.md"


def test_committed_schema_is_up_to_date():
    assert SCHEMA.read_text() == render(), "docs/datamodule.schema.json is stale: run `make schema`"


def test_examples_and_template_validate_against_the_schema():
    schema = json.loads(SCHEMA.read_text())
    for path in EXAMPLES.glob("*/module.jsonld"):
        jsonschema.validate(json.loads(path.read_text()), schema)
    template = ROOT / "etl_assets" / "templates" / "module" / "module.yaml"
    jsonschema.validate(yaml.safe_load(template.read_text().replace("__NAME__", "shop")), schema)


def model_keys() -> set[str]:
    keys = set()
    for obj in vars(model).values():
        if isinstance(obj, type) and issubclass(obj, _Model) and obj is not _Model:
            for name, field in obj.model_fields.items():
                keys.add(field.alias or name)
    return keys


def test_format_doc_documents_every_key():
    text = DOC.read_text()
    documented = set(re.findall(r"`([@A-Za-z_][\w-]*)`", text))
    missing = sorted(model_keys() - documented)
    assert not missing, f"docs/datamodule-format.md does not document: {', '.join(missing)}"
