"""Retention as scheduled jobs (not sensors): each run is in the run history with its log, can be
launched by hand, and a failed removal fails the run.

- `dm_outbox_retention_job` (schedule `dm_outbox_retention`, hourly): prepared versions neither
  published nor approved, older than their module's `retentionDays`, leave the outbox.
- `dm_version_retention_job` (schedule `dm_version_retention`, hourly at :30; only when a module
  sets `keepPublished`): published versions outside `keepPublished` lose their data; the
  current version never does.
"""

import dagster as dg

from etl_assets.metadata.loader import LoadedModule
from etl_assets.retention import Expired, expire_outbox, expire_published
from resources.deployment import SecretsResource
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource

OUTBOX_JOB, OUTBOX_SCHEDULE = "dm_outbox_retention_job", "dm_outbox_retention"
VERSION_JOB, VERSION_SCHEDULE = "dm_version_retention_job", "dm_version_retention"
TAGS = {"dm/trigger": "retention"}


def _report(context: dg.OpExecutionContext, done: list[Expired], what: str) -> list[Expired]:
    for e in done:
        if e.error:
            context.log.error(f"{e.module} {e.version}: not removed: {e.error}")
        else:
            where = f" ({', '.join(e.relations)})" if e.relations else ""
            context.log.info(f"expired {what} {e.module} {e.version}{where}: {e.reason}")
    if not done:
        context.log.info(f"no {what} is past its retention")
    context.add_output_metadata(
        {
            "expired": dg.MetadataValue.int(sum(1 for e in done if not e.error)),
            "failed": dg.MetadataValue.int(sum(1 for e in done if e.error)),
            "versions": dg.MetadataValue.json(
                [{"module": e.module, "version": e.version, "error": e.error} for e in done]
            ),
        }
    )
    return done


def _fail_on_errors(done: list[Expired]) -> None:
    failed = [e for e in done if e.error]
    if failed:
        raise dg.Failure(
            description="; ".join(f"{e.module} {e.version}: {e.error}" for e in failed),
            allow_retries=False,
        )


def build_retention_jobs(
    modules: list[LoadedModule],
) -> tuple[list[dg.JobDefinition], list[dg.ScheduleDefinition]]:
    """The retention jobs and their schedules for the code location's valid modules."""
    if not modules:
        return [], []

    @dg.op(name="expire_outbox_versions", out=dg.Out(list, is_required=True))
    def _outbox(context: dg.OpExecutionContext, outbox: OutboxResource, postgres: PostgresResource):
        return _report(context, expire_outbox(modules, outbox, postgres), "outbox version")

    @dg.job(
        name=OUTBOX_JOB,
        executor_def=dg.in_process_executor,
        tags=TAGS,
        description="Deletes prepared outbox versions that were neither published nor approved"
        " within their module's retentionDays.",
    )
    def outbox_job():
        _outbox()

    jobs = [outbox_job]
    schedules = [
        dg.ScheduleDefinition(
            name=OUTBOX_SCHEDULE,
            job=outbox_job,
            cron_schedule="0 * * * *",
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Hourly outbox retention (dm_outbox_retention_job).",
        )
    ]
    keeping = [m for m in modules if m.model.keepPublished is not None]
    if keeping:

        @dg.op(name="expire_published_versions", out=dg.Out(list, is_required=True))
        def _published(
            context: dg.OpExecutionContext,
            outbox: OutboxResource,
            postgres: PostgresResource,
            secrets: SecretsResource,
        ):
            done = expire_published(keeping, outbox, postgres, secrets.get)
            _report(context, done, "published version")
            _fail_on_errors(done)
            return done

        @dg.job(
            name=VERSION_JOB,
            executor_def=dg.in_process_executor,
            tags=TAGS,
            description="Removes the tables, quarantine rows and outbox folders of published"
            " versions outside their module's keepPublished (never the current version); each"
            " removal is audited and the registry row marked expired.",
        )
        def version_job():
            _published()

        jobs.append(version_job)
        schedules.append(
            dg.ScheduleDefinition(
                name=VERSION_SCHEDULE,
                job=version_job,
                cron_schedule="30 * * * *",
                default_status=dg.DefaultScheduleStatus.RUNNING,
                description="Hourly published-version retention (dm_version_retention_job).",
            )
        )
    return jobs, schedules
