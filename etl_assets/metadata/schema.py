"""The JSON Schema of the module format, generated from the pydantic model.

`python -m etl_assets.metadata.schema docs/datamodule.schema.json` writes it; a test fails when the
committed file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from etl_assets.metadata.jsonld import CONTEXT_URL
from etl_assets.metadata.module import DataModule


def json_schema() -> dict:
    schema = DataModule.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://w3id.org/datamodule-etl/schema/v1"
    schema["title"] = "Datamodule ETL data module"
    schema["properties"]["@context"] = {
        "description": "the bundled datamodule context",
        "anyOf": [
            {"const": CONTEXT_URL},
            {"type": "array", "contains": {"const": CONTEXT_URL}},
        ],
    }
    # the loader also accepts one anonymization object, and one primary-key column as a string
    defs = schema["$defs"]
    for model_name, field in (("Column", "anonymization"), ("Table", "primaryKey")):
        prop = defs[model_name]["properties"][field]
        array = next((a for a in prop.get("anyOf", [prop]) if a.get("type") == "array"), prop)
        single = array["items"]
        alternatives = [a for a in prop.get("anyOf", [prop]) if a is not array]
        meta = {k: prop[k] for k in ("default", "description", "title") if k in prop}
        defs[model_name]["properties"][field] = {
            **meta,
            "anyOf": [array, single, *[a for a in alternatives if a.get("type") == "null"]],
        }
    return schema


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv:
        Path(argv[0]).write_text(text, "utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
