"""A module's `schedule` (cron or @daily, time zone, optional start/end window) as a Dagster
schedule: each tick adds the next version partition and runs the module's job for it."""

import dagster as dg

from etl_assets.factory import job_name, prepare_job_name
from etl_assets.loader import LoadedModule
from etl_assets.versions import next_version, partitions_def_name


def build_schedule(loaded: LoadedModule) -> dg.ScheduleDefinition | None:
    model = loaded.model
    sched = model.schedule
    if sched is None:
        return None
    m = model.name
    target_job = job_name(m) if model.autoUpload else prepare_job_name(m)

    @dg.schedule(
        name=f"{m}_schedule",
        cron_schedule=sched.cron,
        execution_timezone=sched.timezone,
        job_name=target_job,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if model.status == "released"
        else dg.DefaultScheduleStatus.STOPPED,
        description=f"Runs {m} on `{sched.cron}` ({sched.timezone}); each tick is a new version.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        now = context.scheduled_execution_time
        if sched.start and now is not None and now < _aware(sched.start, now):
            return dg.SkipReason(f"before the schedule window starts ({sched.start.isoformat()})")
        if sched.end and now is not None and now > _aware(sched.end, now):
            return dg.SkipReason(f"after the schedule window ended ({sched.end.isoformat()})")
        existing = context.instance.get_dynamic_partitions(partitions_def_name(m))
        version = next_version(model.version, existing)
        context.instance.add_dynamic_partitions(partitions_def_name(m), [version])
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
