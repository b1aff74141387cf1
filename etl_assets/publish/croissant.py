"""Croissant (JSON-LD) metadata of a published version: one FileObject and RecordSet per
published table, so that `mlcroissant` can load it."""

from __future__ import annotations

from typing import Any

from etl_assets.metadata.loader import LoadedModule
from resources.outbox import OutboxResource

CROISSANT_FILE = "croissant.json"

CROISSANT_CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "dct": "http://purl.org/dc/terms/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "key": "cr:key",
    "md5": "cr:md5",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "source": "cr:source",
    "transform": "cr:transform",
}
CROISSANT_TYPES = {
    "string": "sc:Text",
    "integer": "sc:Integer",
    "number": "sc:Float",
    "boolean": "sc:Boolean",
    "date": "sc:Date",
    "datetime": "sc:DateTime",
}


def croissant(
    loaded: LoadedModule, version: str, outbox: OutboxResource, locations: dict[str, str]
) -> dict[str, Any]:
    """Croissant 1.0 JSON-LD of a published version: one FileObject and RecordSet per table."""
    model = loaded.model
    distribution, record_sets = [], []
    for table in model.tables:
        for name in table.published_names:
            distribution.append(
                {
                    "@type": "cr:FileObject",
                    "@id": f"{name}.parquet",
                    "name": f"{name}.parquet",
                    "contentUrl": outbox.table_uri(model.name, version, name),
                    "encodingFormat": "application/x-parquet",
                    "sha256": outbox.table_sha256(model.name, version, name),
                    "description": f"published as {locations[name]}"
                    if locations.get(name)
                    else "the prepared table in the outbox",
                }
            )
            schema = outbox.table_schema(model.name, version, name)
            declared = {c.name: c for c in table.columns}
            fields = []
            for col in schema.names:
                dtype = declared[col].dataType if col in declared else "string"
                fields.append(
                    {
                        "@type": "cr:Field",
                        "@id": f"{name}/{col}",
                        "name": col,
                        "dataType": CROISSANT_TYPES.get(dtype, "sc:Text"),
                        "source": {
                            "fileObject": {"@id": f"{name}.parquet"},
                            "extract": {"column": col},
                        },
                    }
                )
            record_sets.append(
                {"@type": "cr:RecordSet", "@id": name, "name": name, "field": fields}
            )
    return {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "name": model.name,
        "description": model.description or model.name,
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "version": version,
        "license": model.license or "unspecified",
        "url": outbox.version_uri(model.name, version),
        "distribution": distribution,
        "recordSet": record_sets,
    }
