"""Approved uploads: when a task manager approves a prepared version (`dmetl approve`), run the
module's upload job for it."""

import dagster as dg

from etl_assets import registry
from etl_assets.metadata.loader import LoadedModule
from etl_assets.orchestration.jobs import upload_job_name
from resources.postgres import PostgresResource


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
        with postgres.connect(autocommit=True) as conn:
            pending = registry.pending_approvals(conn, [m.name for m in gated])
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
