"""A module's `schedule` (cron or @daily, time zone, optional start/end window) as a Dagster
schedule: each tick allocates the next version and runs the module's job for it, unless someone
asked to skip it (`dmetl skip MODULE`, recorded in the registry and consumed by that tick)."""

import dagster as dg

from etl_assets import registry
from etl_assets.metadata.loader import LoadedModule
from etl_assets.orchestration.jobs import schedule_name, triggered_job_name
from etl_assets.orchestration.versions import allocate
from resources.postgres import PostgresResource


def build_schedule(loaded: LoadedModule) -> dg.ScheduleDefinition | None:
    model = loaded.model
    sched = model.schedule
    if sched is None:
        return None
    m = model.name

    @dg.schedule(
        name=schedule_name(m),
        cron_schedule=sched.cron,
        execution_timezone=sched.timezone,
        job_name=triggered_job_name(m, model.autoUpload),
        default_status=dg.DefaultScheduleStatus.RUNNING
        if model.status == "released"
        else dg.DefaultScheduleStatus.STOPPED,
        description=f"Runs {m} on `{sched.cron}` ({sched.timezone}); each tick is a new version.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext, postgres: PostgresResource):
        now = context.scheduled_execution_time
        if sched.start and now is not None and now < _aware(sched.start, now):
            return dg.SkipReason(f"before the schedule window starts ({sched.start.isoformat()})")
        if sched.end and now is not None and now > _aware(sched.end, now):
            return dg.SkipReason(f"after the schedule window ended ({sched.end.isoformat()})")
        with postgres.connect(autocommit=True) as conn:
            skip = registry.consume_skip(conn, m, now)
        if skip is not None:
            return dg.SkipReason(
                f"skipped on request of {skip['requested_by']}"
                f" ({skip['requested_at'].isoformat(timespec='seconds')})"
            )
        version = allocate(context.instance, postgres, loaded, trigger="schedule")
        return dg.RunRequest(
            run_key=f"{m}:{version}",
            partition_key=version,
            tags={"dm/module": m, "dm/trigger": "schedule"},
        )

    return _schedule


def _aware(moment, like):
    if moment.tzinfo is None and like.tzinfo is not None:
        return moment.replace(tzinfo=like.tzinfo)
    return moment
