"""The JSON Schema of the module format, generated from the pydantic model.

`python -m etl_assets.schema docs/datamodule.schema.json` writes it; a test fails when the
committed file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from etl_assets.jsonld import CONTEXT_URL
from etl_assets.model import DataModule


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
