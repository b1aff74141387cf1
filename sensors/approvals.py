"""Approved uploads: when a task manager approves a prepared version (`dmetl approve`), run the
module's upload job for it."""

import dagster as dg

from etl_assets.factory import upload_job_name
from etl_assets.loader import LoadedModule
from etl_assets.publishing import ensure_approvals
from etl_assets.sinks.postgres import REGISTRY_SCHEMA
from resources.postgres import PostgresResource


def pending_approvals(postgres: PostgresResource, modules: list[str]) -> list[tuple]:
    """(module, version, approved_at) approved but not yet published, oldest approval first."""
    with postgres.connect(autocommit=True) as conn:
        ensure_approvals(conn)
        rows = conn.execute(
            f"""SELECT a.module, a.version, a.approved_at FROM {REGISTRY_SCHEMA}.approvals a
                LEFT JOIN {REGISTRY_SCHEMA}.versions v USING (module, version)
                WHERE v.version IS NULL AND a.module = ANY(%s)
                ORDER BY a.approved_at""",
            (modules,),
        ).fetchall()
    return [(m, v, at) for m, v, at in rows]


def build_approval_sensor(
    modules: list[LoadedModule], jobs: dict[str, object]
) -> dg.SensorDefinition | None:
    gated = [m for m in modules if not m.model.autoUpload]
    if not gated:
        return None

    @dg.sensor(
        name="dm_approved_uploads",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=[jobs[upload_job_name(m.name)] for m in gated],
        description="Runs the upload job of every approved, not yet published version.",
    )
    def _approvals(context: dg.SensorEvaluationContext, postgres: PostgresResource):
        pending = pending_approvals(postgres, [m.name for m in gated])
        if not pending:
            return dg.SkipReason("no approved version waits for upload")
        return [
            dg.RunRequest(
                # approving again (e.g. after a failed upload) requests a new run
                run_key=f"{module}:{version}:upload:{approved_at.isoformat()}",
                job_name=upload_job_name(module),
                partition_key=version,
                tags={"dm/module": module, "dm/trigger": "approval"},
            )
            for module, version, approved_at in pending
        ]

    return _approvals
