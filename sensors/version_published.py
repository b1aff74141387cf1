"""Publication events: one message per published version, for consumers and, if asked, people.

When a run that uploaded a version succeeds, a JSON event goes on the module's Kafka connection
(when it declares one; topic `DM_ALERT_KAFKA_TOPIC`), and with `DM_ALERT_ON_PUBLISH` also a
message to the `DM_ALERT_URLS`: module, version, published rows per table, a link to the run.
Counts only, never values; `dm_registry.alerts` keeps a restarted sensor from sending twice.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from etl_assets import registry
from etl_assets.metadata.loader import LoadedModule
from etl_assets.results import StageResultMissing, UploadCounts
from resources.alerts import AlertsResource
from resources.deployment import SecretsResource
from resources.postgres import PostgresResource
from sensors.run_failure import kafka_for


def published_rows(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    """Rows published per table by the run's upload materializations (empty: no upload)."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    rows = {}
    for record in records:
        mat = record.asset_materialization
        if mat is None or len(mat.asset_key.path) != 3 or mat.asset_key.path[1] != "upload":
            continue
        try:
            rows[mat.asset_key.path[2]] = UploadCounts.from_metadata(mat.metadata).published_rows
        except StageResultMissing:
            continue
    return rows


def build_publish_sensor(modules: list[LoadedModule]) -> dg.SensorDefinition:
    by_name = {m.name: m for m in modules}

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="dm_version_published_alert",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends one event per published version (Kafka on the module's connection;"
        " DM_ALERT_URLS too with DM_ALERT_ON_PUBLISH).",
    )
    def _published(
        context: dg.RunStatusSensorContext,
        alerts: AlertsResource,
        postgres: PostgresResource,
        secrets: SecretsResource,
    ) -> None:
        run = context.dagster_run
        module, version = run.tags.get("dm/module"), run.tags.get("dagster/partition")
        if module is None or version is None:
            return
        rows = published_rows(context.instance, run.run_id)
        try:
            kafka = kafka_for(by_name.get(module), secrets)
        except Exception as exc:  # e.g. the connection's variable is unset: no Kafka event
            context.log.warning(f"publication event NOT sent: {exc}")
            kafka = None
        if not rows or (kafka is None and not alerts.on_publish):
            return
        with postgres.connect(autocommit=True) as conn:
            if not registry.claim_alert(conn, run.run_id, "version_published"):
                return
        url = alerts.run_url(run.run_id)
        counts = ", ".join(f"{t}={n}" for t, n in sorted(rows.items()))
        if alerts.on_publish:
            title = f"[datamodule] {module} {version} published"
            body = f"module: {module}\nversion: {version}\nrows: {counts}\nrun: {url}"
            for d in alerts.notify(title, body):
                context.log.info(f"publication via {d.channel}: {'sent' if d.ok else 'NOT sent'}")
        if kafka is not None:
            event = {
                "event": "version_published", "module": module, "version": version,
                "run_id": run.run_id, "rows": rows, "url": url,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }  # fmt: skip
            try:
                d = alerts.publish_event(kafka, f"{module}:{version}", event)
                context.log.info(f"publication via {d.channel}: {'sent' if d.ok else 'NOT sent'}")
            except Exception as exc:  # an event that cannot be sent must not stop the sensor
                context.log.warning(f"publication event NOT sent: {exc}")

    return _published
