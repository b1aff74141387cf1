"""Approved uploads: when a task manager approves a prepared version (`dmetl approve`), run the
module's upload job for it — unless an upload run of that version started after the approval
(the console launches one itself when it approves)."""

import dagster as dg

from etl_assets import registry
from etl_assets.metadata.loader import LoadedModule
from etl_assets.orchestration.jobs import upload_job_name
from resources.postgres import PostgresResource


def launched_since(instance: dg.DagsterInstance, module: str, version: str, at) -> bool:
    """Whether an upload run of `version` was created at or after `at` (the approval)."""
    records = instance.get_run_records(
        dg.RunsFilter(
            job_name=upload_job_name(module),
            tags={"dagster/partition": version},
            created_after=at,
        ),
        limit=1,
    )
    return bool(records)


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
        pending = [
            (module, version, at)
            for module, version, at in pending
            if not launched_since(context.instance, module, version, at)
        ]
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
