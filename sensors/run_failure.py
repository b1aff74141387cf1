"""Failure alerts: a run-failure sensor that logs (and, where configured, notifies) each failure."""

import dagster as dg


@dg.run_failure_sensor(
    name="dm_run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports every failed data module run with the step that failed.",
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    module = run.tags.get("dm/module", "?")
    version = run.tags.get("dagster/partition", "?")
    message = context.failure_event.message or "run failed"
    context.log.error(f"data module {module} version {version}: run {run.run_id} failed: {message}")
