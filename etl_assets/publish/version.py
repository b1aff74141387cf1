"""Publishing a version: its metadata snapshot in the outbox, the approval gate, the module's sink,
the registry row, the Croissant metadata and the outbox's `current.json` pointer, in that order."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
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
from etl_assets.publish.sink import (
    OutboxTables,
    PublishReport,
    PublishRequest,
    QuarantineSource,
    Sink,
)
from etl_assets.results import TableOutcome
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
            report.current_version = registry.record_version(
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
                document=request.loaded.document,
            )


def write_current_pointer(
    outbox: OutboxResource, postgres: PostgresResource, module: str
) -> str | None:
    """`published/<module>/current.json`: the version consumers are served and its folder.
    The registry is read and the file written under a lock, so that of two uploads finishing
    together the last write names what the registry says last."""
    key = f"dm_current_pointer:{module}"
    with postgres.connect(autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        try:
            version = registry.current_version(conn, module)
            if version is None:
                return None
            return outbox.write_current(
                module,
                {
                    "module": module,
                    "version": version,
                    "folder": version,
                    "uri": outbox.version_uri(module, version),
                    "croissant": f"{version}/{CROISSANT_FILE}",
                    "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                },
            )
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


def committed_before(
    postgres: PostgresResource, loaded: LoadedModule, version: str, outbox: OutboxResource
) -> PublishReport | None:
    """The version as its sink committed it, when an earlier attempt was killed between that
    commit and the end of the step (it is in the registry with this metadata and the outbox's
    row counts, and has no Croissant file yet): the retry completes it instead of loading again.
    A version that was published completely is re-published on purpose, so it is loaded again."""
    model = loaded.model
    if outbox.has_file(model.name, version, CROISSANT_FILE):
        return None
    with postgres.connect(autocommit=True) as conn:
        known = registry.list_versions(conn, model.name)
    rows = [r for r in known if r["version"] == version]
    if not rows or rows[0]["metadata_hash"] != loaded.hash:
        return None
    row = rows[0]
    names = [n for t in model.tables for n in t.published_names]
    outbox_rows = {n: outbox.table_rows(model.name, version, n) for n in names}
    if {str(k): int(v) for k, v in row["row_counts"].items()} != outbox_rows:
        return None
    return PublishReport(
        sink=row["sink"],
        rows=outbox_rows,
        inserted=dict.fromkeys(names, 0),
        locations={str(k): str(v) for k, v in row["tables"].items()},
        location=row["location"],
        registered=True,
        current_version=next((r["version"] for r in known if r["current"]), None),
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
    outcomes: Mapping[str, TableOutcome] | None = None,
) -> PublishReport:
    """Load the outbox version into the module's sink and write its Croissant metadata, which
    tells what cleaning and anonymization did and reached (`outcomes`: per table, as the stages
    recorded it)."""
    model = loaded.model
    names = [n for t in model.tables for n in t.published_names]
    missing = [n for n in names if not outbox.has_table(model.name, version, n)]
    if missing:
        raise UploadError(
            f"{model.name} {version}: the outbox has no {', '.join(missing)}; run the prepare job"
            " for this version first"
        )
    _require_approval(postgres, loaded, version, log)
    report = committed_before(postgres, loaded, version, outbox)
    if report is not None:
        if log:
            log.info(
                f"{model.name} {version} was committed by an earlier attempt (run"
                " killed before its end): writing its Croissant metadata without loading again"
            )
        return _finish(
            loaded, version, outbox, postgres, report, names, log, outcomes=outcomes, run_id=run_id
        )
    request = PublishRequest(
        loaded=loaded,
        version=version,
        tables=OutboxTables(outbox, model.name, version, names),
        quarantine=QuarantineSource(outbox, model.name, version),
        outbox=outbox,
        postgres=postgres,
        secrets=secrets,
        run_id=run_id,
        log=log,
    )
    report = sink_for(model.upload).publish(request)
    if not report.registered:
        _register(postgres, request, report)
    return _finish(
        loaded, version, outbox, postgres, report, names, log, outcomes=outcomes, run_id=run_id
    )


def _finish(
    loaded: LoadedModule,
    version: str,
    outbox: OutboxResource,
    postgres: PostgresResource,
    report: PublishReport,
    names: list[str],
    log: Any,
    *,
    outcomes: Mapping[str, TableOutcome] | None,
    run_id: str | None,
) -> PublishReport:
    """The version's Croissant metadata (its presence says the publication is complete), then
    the outbox's current.json pointer (a retry after a kill between them publishes again)."""
    model = loaded.model
    doc = croissant(loaded, version, outbox, report.locations, outcomes=outcomes, run_id=run_id)
    report.croissant_path = outbox.write_json(model.name, version, CROISSANT_FILE, doc)
    write_current_pointer(outbox, postgres, model.name)
    if log:
        for name in names:
            log.info(
                f"published {name}: {report.rows.get(name, 0):,} rows"
                f" ({report.inserted.get(name, 0):,} inserted) as {report.locations.get(name, '?')}"
            )
        log.info(f"{model.name} serves {report.current_version} (the highest published version)")
    return report
