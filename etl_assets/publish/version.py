"""Publishing a version: its metadata snapshot in the outbox, the approval gate, the module's sink,
the registry row and the Croissant metadata, in that order."""

from __future__ import annotations

import copy
from typing import Any

from etl_assets import registry
from etl_assets.errors import UploadError
from etl_assets.metadata import Upload
from etl_assets.metadata.loader import LoadedModule
from etl_assets.publish.croissant import CROISSANT_FILE, croissant
from etl_assets.publish.kafka import KafkaSink
from etl_assets.publish.postgres import PostgresSink
from etl_assets.publish.s3 import S3Sink
from etl_assets.publish.script import ScriptSink
from etl_assets.publish.sink import OutboxTables, PublishReport, PublishRequest, Sink
from resources.deployment import SecretsResource
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource

SNAPSHOT_FILE = "datamodule.jsonld"
SINKS: dict[str, type] = {"postgres": PostgresSink, "s3": S3Sink, "kafka": KafkaSink}


def sink_for(upload: Upload) -> Sink:
    """The sink the module's `upload` names: a built-in sink or its upload script."""
    if upload.script is not None:
        return ScriptSink()
    return SINKS[upload.sink.type]()


def write_version_snapshot(outbox: OutboxResource, loaded: LoadedModule, version: str) -> str:
    """The module's metadata as of this version (its `version` set), beside the outbox data."""
    doc = copy.deepcopy(loaded.document)
    doc["version"] = version
    return outbox.write_json(loaded.name, version, SNAPSHOT_FILE, doc)


def _require_approval(postgres: PostgresResource, loaded: LoadedModule, version: str, log: Any):
    if loaded.model.autoUpload:
        return
    with postgres.connect(autocommit=True) as conn:
        ok = registry.approval(conn, loaded.name, version)
    if ok is None:
        raise UploadError(
            f"{loaded.name} {version} is waiting for approval: a task manager approves it"
            f" with `dmetl approve {loaded.name} {version}` (autoUpload is off)"
        )
    if log:
        log.info(f"approved by {ok['approved_by']} at {ok['approved_at']}")


def _register(postgres: PostgresResource, request: PublishRequest, report: PublishReport) -> None:
    """Record the version in the deployment's registry (retention and approvals rely on it)."""
    with postgres.connect(autocommit=True) as conn:
        registry.ensure(conn)
        with conn.transaction(), conn.cursor() as cur:
            registry.record_version(
                cur,
                module=request.module,
                version=request.version,
                metadata_hash=request.loaded.hash,
                sink=report.sink,
                location=report.location
                or ", ".join(sorted(set(report.locations.values())))
                or report.sink,
                tables=report.locations,
                rows=report.rows,
                run_id=request.run_id,
            )


def publish_version(
    loaded: LoadedModule,
    version: str,
    *,
    outbox: OutboxResource,
    postgres: PostgresResource,
    secrets: SecretsResource,
    run_id: str | None = None,
    log: Any = None,
) -> PublishReport:
    """Load the outbox version into the module's sink and write its Croissant metadata."""
    model = loaded.model
    names = [n for t in model.tables for n in t.published_names]
    missing = [n for n in names if not outbox.has_table(model.name, version, n)]
    if missing:
        raise UploadError(
            f"{model.name} {version}: the outbox has no {', '.join(missing)}; run the prepare job"
            " for this version first"
        )
    _require_approval(postgres, loaded, version, log)
    request = PublishRequest(
        loaded=loaded,
        version=version,
        tables=OutboxTables(outbox, model.name, version, names),
        quarantine=outbox.read_quarantine(model.name, version),
        outbox=outbox,
        postgres=postgres,
        secrets=secrets,
        run_id=run_id,
        log=log,
    )
    report = sink_for(model.upload).publish(request)
    if not report.registered:
        _register(postgres, request, report)
    doc = croissant(loaded, version, outbox, report.locations)
    report.croissant_path = outbox.write_json(model.name, version, CROISSANT_FILE, doc)
    if log:
        for name in names:
            log.info(
                f"published {name}: {report.rows.get(name, 0):,} rows"
                f" ({report.inserted.get(name, 0):,} inserted) as {report.locations.get(name, '?')}"
            )
    return report
