"""Failure alerts: one message per failed data-module run, to people and to Kafka.

Each failed run is reported once — through apprise to every `DM_ALERT_URLS` URL (email, chat
webhooks), and as a JSON event on the module's Kafka connection when it declares one — naming the
module, the version, the failed step, the root cause in one line and a link to the run. The
sensor's cursor (Dagster's run-status cursor, kept across daemon restarts) moves past each run;
`dm_registry.alerts` records every run alerted, so a tick that is evaluated again (a daemon
killed after sending, before saving the cursor) sends nothing twice.

The root cause never quotes record values: a message is repeated only from errors the product
raises with masked text (`dg.Failure`, extraction, upload and metadata errors, Dagster's own
check failures); for any other exception only its class is named, the run's log has the rest.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import dagster as dg

from etl_assets import registry
from etl_assets.connections import redact_url, resolve_connection
from etl_assets.metadata.loader import LoadedModule
from resources.alerts import AlertsResource
from resources.deployment import SecretsResource
from resources.kafka import KafkaResource
from resources.postgres import PostgresResource

# errors whose message the product writes itself, without record values
SAFE_ERRORS = {
    "Failure",
    "ExtractionError",
    "ConnectionError_",
    "ConnectionError",
    "UploadError",
    "MetadataError",
    "DeploymentError",
    "PrivacyModelUnsatisfiable",
    "DagsterAssetCheckFailedError",
    "DagsterStepOutputNotFoundError",
}
WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}
MAX_CAUSE = 300


@dataclass(frozen=True)
class FailureReport:
    module: str
    version: str
    run_id: str
    job: str
    failed_steps: list[str]
    root_cause: str
    url: str
    will_retry: bool = False  # the instance's run retries will re-execute it (dagster/will_retry)

    @property
    def title(self) -> str:
        step = self.failed_steps[0] if self.failed_steps else "the run"
        return f"[datamodule] {self.module} {self.version} failed in {step}"

    @property
    def body(self) -> str:
        return "\n".join(
            [
                f"module: {self.module}",
                f"version: {self.version}",
                f"failed step: {', '.join(self.failed_steps) or '-'}",
                f"root cause: {self.root_cause}",
                f"run: {self.url}",
                *(["retry: the instance re-executes it from failure"] if self.will_retry else []),
            ]
        )

    def event(self) -> dict:
        return {
            "event": "run_failed",
            "module": self.module,
            "version": self.version,
            "run_id": self.run_id,
            "job": self.job,
            "failed_steps": self.failed_steps,
            "root_cause": self.root_cause,
            "url": self.url,
            "will_retry": self.will_retry,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }


def root_cause(error) -> str:
    """One line about a step's error (a `SerializableErrorInfo`), never a record value."""
    if error is None:
        return "the run failed (no step error recorded; see the run's log)"
    while error.cls_name in WRAPPERS and error.cause is not None:
        error = error.cause
    if error.cls_name not in SAFE_ERRORS:
        return f"{error.cls_name} (its message may quote data: see the run's log)"
    line = next((ln for ln in error.message.splitlines() if ln.strip()), "").strip()
    line = re.sub(r"^[\w.]+(Error|Failure|Exception|Unsatisfiable|_):\s*", "", line)
    line = redact_url(line)
    return line if len(line) <= MAX_CAUSE else line[: MAX_CAUSE - 1] + "…"


def report_for(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> FailureReport:
    run = context.dagster_run
    failures = context.get_step_failure_events()
    steps = [e.step_key for e in failures if e.step_key]
    if failures:
        cause = root_cause(failures[0].step_failure_data.error)
    else:
        first = (context.failure_event.message or "the run failed").splitlines()[0]
        cause = redact_url(first)[:MAX_CAUSE]
    return FailureReport(
        module=run.tags.get("dm/module", "?"),
        version=run.tags.get("dagster/partition", "?"),
        run_id=run.run_id,
        job=run.job_name,
        failed_steps=steps,
        root_cause=cause,
        url=alerts.run_url(run.run_id),
        will_retry=run.tags.get("dagster/will_retry") == "true",
    )


def kafka_for(loaded: LoadedModule | None, secrets: SecretsResource) -> KafkaResource | None:
    """The module's first declared Kafka connection, if it has one."""
    if loaded is None:
        return None
    conn = next((c for c in loaded.model.connections if c.type == "kafka"), None)
    if conn is None:
        return None
    return KafkaResource.from_connection(resolve_connection(loaded.model, conn.name, secrets.get))


def build_run_failure_sensor(modules: list[LoadedModule]) -> dg.SensorDefinition:
    by_name = {m.name: m for m in modules}

    @dg.run_failure_sensor(
        name="dm_run_failure_alert",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends one alert per failed data-module run (email and chat through"
        " DM_ALERT_URLS, a Kafka event on the module's Kafka connection).",
    )
    def _alert(
        context: dg.RunFailureSensorContext,
        alerts: AlertsResource,
        postgres: PostgresResource,
        secrets: SecretsResource,
    ) -> None:
        report = report_for(context, alerts)
        context.log.error(
            f"data module {report.module} version {report.version}: run {report.run_id} failed"
            f" in {', '.join(report.failed_steps) or 'no step'}: {report.root_cause}"
        )
        if "dm/module" not in context.dagster_run.tags:
            return
        with postgres.connect(autocommit=True) as conn:
            if not registry.claim_alert(conn, report.run_id, "run_failed"):
                context.log.info(f"run {report.run_id}: already alerted, not sent again")
                return
        for delivery in alerts.notify(report.title, report.body):
            log = context.log.info if delivery.ok else context.log.warning
            log(f"alert via {delivery.channel}: {'sent' if delivery.ok else 'NOT sent'}")
        try:
            kafka = kafka_for(by_name.get(report.module), secrets)
            if kafka is not None:
                delivery = alerts.publish_event(kafka, report.run_id, report.event())
                context.log.info(
                    f"alert via {delivery.channel}: {'sent' if delivery.ok else 'NOT sent'}"
                )
        except Exception as exc:  # an alert that cannot be sent must not stop the sensor
            context.log.warning(f"alert via Kafka NOT sent: {exc}")

    return _alert
