"""Publishing a version: the outbox snapshot, approval, the sink load and Croissant metadata."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import psycopg

from etl_assets.anonymization import published_tables
from etl_assets.errors import UploadError
from etl_assets.loader import LoadedModule
from etl_assets.sinks import postgres as pg_sink
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource

SNAPSHOT_FILE = "datamodule.jsonld"
CROISSANT_FILE = "croissant.json"
APPROVALS_DDL = f"""
CREATE TABLE IF NOT EXISTS {pg_sink.REGISTRY_SCHEMA}.approvals (
    module      text        NOT NULL,
    version     text        NOT NULL,
    approved_by text        NOT NULL,
    approved_at timestamptz NOT NULL DEFAULT now(),
    comment     text,
    PRIMARY KEY (module, version)
);
"""

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


def write_version_snapshot(outbox: OutboxResource, loaded: LoadedModule, version: str) -> str:
    """The module's metadata as of this version (its `version` set), beside the outbox data."""
    doc = copy.deepcopy(loaded.document)
    doc["version"] = version
    return outbox.write_json(loaded.name, version, SNAPSHOT_FILE, doc)


def croissant(
    loaded: LoadedModule, version: str, outbox: OutboxResource, locations: dict[str, str]
) -> dict[str, Any]:
    """Croissant 1.0 JSON-LD of a published version: one FileObject and RecordSet per table."""
    model = loaded.model
    distribution, record_sets = [], []
    for table in model.tables:
        for name in published_tables(table):
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


@dataclass
class PublishReport:
    sink: str
    rows: dict[str, int] = field(default_factory=dict)
    inserted: dict[str, int] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)
    croissant_path: str | None = None


def ensure_approvals(conn: psycopg.Connection) -> None:
    pg_sink.ensure_registry(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('dm_registry_ddl'))")
        conn.execute(APPROVALS_DDL)


def approve(
    postgres: PostgresResource, module: str, version: str, by: str, comment: str = ""
) -> None:
    """Record that `by` approved the upload of `module` `version`."""
    with postgres.connect(autocommit=True) as conn:
        ensure_approvals(conn)
        conn.execute(
            f"""INSERT INTO {pg_sink.REGISTRY_SCHEMA}.approvals (module, version, approved_by, comment)
                VALUES (%s, %s, %s, %s)
                ON CONFLICT (module, version) DO UPDATE SET approved_by = EXCLUDED.approved_by,
                  approved_at = now(), comment = EXCLUDED.comment""",
            (module, version, by, comment),
        )


def approval(conn: psycopg.Connection, module: str, version: str) -> dict | None:
    ensure_approvals(conn)
    row = conn.execute(
        f"SELECT approved_by, approved_at FROM {pg_sink.REGISTRY_SCHEMA}.approvals"
        " WHERE module = %s AND version = %s",
        (module, version),
    ).fetchone()
    return {"approved_by": row[0], "approved_at": row[1]} if row else None


def _record(
    postgres: PostgresResource,
    loaded: LoadedModule,
    version: str,
    report: PublishReport,
    run_id: str | None,
    location: str | None = None,
) -> None:
    """Record a published version in the deployment's registry."""
    with postgres.connect(autocommit=True) as conn:
        pg_sink.ensure_registry(conn)
        with conn.transaction(), conn.cursor() as cur:
            pg_sink.record_version(
                cur,
                module=loaded.name,
                version=version,
                metadata_hash=loaded.hash,
                sink=report.sink,
                location=location
                or ", ".join(sorted(set(report.locations.values())))
                or report.sink,
                tables=report.locations,
                rows=report.rows,
                run_id=run_id,
            )


def publish_version(
    loaded: LoadedModule,
    version: str,
    *,
    outbox: OutboxResource,
    postgres: PostgresResource,
    run_id: str | None = None,
    log: Any = None,
) -> PublishReport:
    """Load the outbox version into the module's sink and write its Croissant metadata."""
    model = loaded.model
    names = [n for t in model.tables for n in published_tables(t)]
    missing = [n for n in names if not outbox.has_table(model.name, version, n)]
    if missing:
        raise UploadError(
            f"{model.name} {version}: the outbox has no {', '.join(missing)}; run the prepare job"
            " for this version first"
        )
    tables = {n: outbox.read_table(model.name, version, n) for n in names}
    quarantine = outbox.read_quarantine(model.name, version)
    sink = model.upload.sink
    with postgres.connect(autocommit=True) as conn:
        if not model.autoUpload:
            ok = approval(conn, model.name, version)
            if ok is None:
                raise UploadError(
                    f"{model.name} {version} is waiting for approval: a task manager approves it"
                    f" with `dmetl approve {model.name} {version}` (autoUpload is off)"
                )
            if log:
                log.info(f"approved by {ok['approved_by']} at {ok['approved_at']}")
    if sink is not None and sink.type == "postgres":
        # a named connection sends the data to another database; its registry row is written
        # there in the same transaction, and recorded in the deployment's registry below
        target = postgres
        if sink.connection:
            from etl_assets.connections import resolve_connection

            target = PostgresResource(url=resolve_connection(model, sink.connection).url)
        schema = sink.schema_ or f"dm_{model.name}"
        with target.connect(autocommit=True) as conn:
            result = pg_sink.publish(
                conn,
                module=model.name,
                version=version,
                schema=schema,
                tables=tables,
                quarantine=quarantine,
                metadata_hash=loaded.hash,
                mode=sink.mode,
                run_id=run_id,
                location=f"{target.display_url} schema {schema}",
            )
        report = PublishReport(
            sink=f"postgres:{sink.mode}",
            rows=result.rows,
            inserted=result.inserted,
            locations=result.tables,
        )
        if target is not postgres:
            _record(
                postgres, loaded, version, report, run_id, f"{target.display_url} schema {schema}"
            )
    else:
        from etl_assets.sinks import publish_with

        report = publish_with(
            loaded, version, tables, outbox=outbox, postgres=postgres, run_id=run_id, log=log
        )
        # every sink's versions are in the registry: retention and approvals rely on it
        _record(postgres, loaded, version, report, run_id)
    doc = croissant(loaded, version, outbox, report.locations)
    report.croissant_path = outbox.write_json(model.name, version, CROISSANT_FILE, doc)
    if log:
        for name in names:
            log.info(
                f"published {name}: {report.rows.get(name, 0):,} rows"
                f" ({report.inserted.get(name, 0):,} inserted) as {report.locations.get(name, '?')}"
            )
    return report
