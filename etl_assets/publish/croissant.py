"""Croissant 1.1 (JSON-LD) metadata of a published version, written beside its Parquet files in
the version's published outbox folder, so that `mlcroissant.Dataset(jsonld=...)` loads every
record of every table.

- one FileObject per published table, its `contentUrl` relative to the Croissant file (a
  consumer who copies the folder, or reads it from S3, keeps a working document);
- one RecordSet per published table, its fields typed as the *published* column is (read from
  the Parquet's Arrow schema: a pseudonymized id or a generalized date is text), with the
  metadata's descriptions, the primary key as `key` and foreign keys as `references`;
- what anonymization did and reached, and where the version came from: `croissant_rai.py`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from etl_assets.connections import redact_url
from etl_assets.metadata import Table
from etl_assets.metadata.loader import LoadedModule
from etl_assets.publish.croissant_rai import (
    DM_VOCAB,
    column_anonymization,
    provenance,
    rai_properties,
    record_set_privacy,
)
from etl_assets.results import TableOutcome
from resources.outbox import OutboxResource

CROISSANT_FILE = "croissant.json"
CONFORMS_TO = "http://mlcommons.org/croissant/1.1"

# the standard Croissant 1.1 @context (as mlcroissant expects it, see the contract test), plus
# the W3C PROV-O namespace and our vocabulary for the per-column anonymization
CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "description": {"@container": "@language"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "name": {"@container": "@language"},
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
    "prov": "http://www.w3.org/ns/prov#",
    "dm": DM_VOCAB,
}

DEFAULT_LICENSE = (
    "No license was declared in the module metadata: no rights are granted; ask the module's"
    " owners before any use."
)


def croissant_type(arrow: pa.DataType) -> str:
    """The Croissant data type of a published column, from its Arrow type."""
    if pa.types.is_boolean(arrow):
        return "sc:Boolean"
    if pa.types.is_integer(arrow):
        return "sc:Integer"
    if pa.types.is_floating(arrow) or pa.types.is_decimal(arrow):
        return "sc:Float"
    if pa.types.is_date(arrow):
        return "sc:Date"
    if pa.types.is_timestamp(arrow):
        return "sc:DateTime"
    if pa.types.is_time(arrow):
        return "sc:Time"
    return "sc:Text"


def _keyable(table: Table, column: str) -> bool:
    """A published column still identifies records: not generalized, suppressed, perturbed
    or permuted (a pseudonym is a keyed hash of the key, one to one)."""
    if column not in {c.name for c in table.columns}:
        return False
    return all(op.method == "pseudonymize" for op in table.column(column).anonymization)


def record_set_key(table: Table, name: str, columns: list[str]) -> list[str]:
    """The published table's key: the primary key when it survives anonymization; the
    sensitive table of an anatomization is keyed by group and sensitive value."""
    names = table.published_names
    if len(names) == 2 and name == names[1]:
        return ["group_id", *[c for c in columns if c not in ("group_id", "count")]]
    key = table.primaryKey or []
    if key and all(c in columns and _keyable(table, c) for c in key):
        return list(key)
    return []


def _reference(loaded: LoadedModule, table: Table, column: str) -> dict | None:
    """A foreign key as a Croissant reference, when its target is published as one table and
    both ends are still comparable (equal pseudonyms, or untouched values)."""
    if column not in {c.name for c in table.columns}:
        return None
    fk = table.column(column).foreignKey
    if fk is None:
        return None
    target = loaded.model.table(fk.table)
    if target.published_names != [fk.table] or not _keyable(target, fk.column):
        return None
    if not _keyable(table, column):
        return None
    return {"field": {"@id": f"{fk.table}/{fk.column}"}}


def _field(
    loaded: LoadedModule,
    table: Table,
    name: str,
    column: str,
    arrow: pa.DataType,
    outcome: TableOutcome | None,
) -> dict[str, Any]:
    """One published column as a Croissant field: its published type, the metadata's
    description and what anonymization did to it, its foreign key as a reference."""
    declared = {c.name: c for c in table.columns}
    anonymization = column_anonymization(table, column, outcome)
    parts = []
    if column in declared and declared[column].description:
        parts.append(declared[column].description.rstrip("."))
    elif column == "group_id":
        parts.append("the anatomization group linking the two tables of " + table.name)
    elif column == "count":
        parts.append("how many records of the group have this sensitive value")
    if anonymization:
        parts.append(anonymization["dm:applied"])
    field: dict[str, Any] = {
        "@type": "cr:Field",
        "@id": f"{name}/{column}",
        "name": column,
        "dataType": croissant_type(arrow),
        "source": {"fileObject": {"@id": f"{name}.parquet"}, "extract": {"column": column}},
    }
    if parts:
        field["description"] = ". ".join(parts) + "."
    if reference := _reference(loaded, table, column):
        field["references"] = reference
    if anonymization:
        field["dm:anonymization"] = anonymization
    return field


def _table_parts(
    loaded: LoadedModule,
    version: str,
    outbox: OutboxResource,
    locations: Mapping[str, str],
    outcomes: Mapping[str, TableOutcome],
) -> tuple[list[dict], list[dict]]:
    module = loaded.name
    distribution, record_sets = [], []
    for table in loaded.model.tables:
        outcome = outcomes.get(table.name)
        for name in table.published_names:
            # an upload script says where it put a table: never let a password through
            where = redact_url(locations[name]) if locations.get(name) else None
            distribution.append(
                {
                    "@type": "cr:FileObject",
                    "@id": f"{name}.parquet",
                    "name": f"{name}.parquet",
                    "contentUrl": f"{name}.parquet",
                    "encodingFormat": "application/x-parquet",
                    "sha256": outbox.table_sha256(module, version, name),
                    "description": f"{name} of {module} {version} as Parquet"
                    + (f"; also published as {where}" if where else ""),
                }
            )
            schema = outbox.table_schema(module, version, name)
            fields = [
                _field(loaded, table, name, col, arrow, outcome)
                for col, arrow in zip(schema.names, schema.types, strict=True)
            ]
            record_set: dict[str, Any] = {
                "@type": "cr:RecordSet",
                "@id": name,
                "name": name,
                "description": table.description or f"table {name} of {module}",
                "field": fields,
            }
            if key := record_set_key(table, name, schema.names):
                record_set["key"] = [{"@id": f"{name}/{c}"} for c in key]
            record_set.update(record_set_privacy(table, outcome))
            record_sets.append(record_set)
    return distribution, record_sets


def cite_as(loaded: LoadedModule, version: str, published: dt.date) -> str:
    """The module's citeAs, or a BibTeX entry built from its name, owners and version."""
    model = loaded.model
    if model.citeAs:
        return model.citeAs
    authors = " and ".join(model.owners) or model.name
    return (
        f"@misc{{{model.name}_{version.replace('.', '_')},"
        f" title={{{{{model.name}}}: {model.description or model.name}}},"
        f" author={{{authors}}}, version={{{version}}}, year={{{published.year}}},"
        " note={anonymized data module}}"
    )


def croissant(
    loaded: LoadedModule,
    version: str,
    outbox: OutboxResource,
    locations: Mapping[str, str],
    *,
    outcomes: Mapping[str, TableOutcome] | None = None,
    run_id: str | None = None,
    published: dt.datetime | None = None,
) -> dict[str, Any]:
    """Croissant 1.1 JSON-LD of a published version (see the module docstring)."""
    model = loaded.model
    published = published or dt.datetime.now(dt.UTC)
    outcomes = outcomes or {}
    distribution, record_sets = _table_parts(loaded, version, outbox, locations, outcomes)
    doc: dict[str, Any] = {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "name": model.name,
        "description": model.description or f"data module {model.name}",
        "conformsTo": CONFORMS_TO,
        "version": version,
        "datePublished": published.replace(microsecond=0).isoformat(),
        "citeAs": cite_as(loaded, version, published.date()),
        "license": model.license or DEFAULT_LICENSE,
        "url": outbox.version_uri(model.name, version),
        "creator": [_agent(o) for o in model.owners],
        "distribution": distribution,
        "recordSet": record_sets,
    }
    if not doc["creator"]:
        del doc["creator"]
    doc.update(rai_properties(loaded, outcomes))
    doc.update(provenance(loaded, version, outcomes, run_id))
    return doc


def _agent(owner: str) -> dict[str, str]:
    if owner.startswith("team:"):
        return {"@type": "sc:Organization", "name": owner.removeprefix("team:")}
    return {"@type": "sc:Person", "email": owner, "name": owner}
