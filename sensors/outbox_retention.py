"""Outbox retention: a prepared version that was neither published nor approved expires after the
module's `retentionDays` (seed 003: "after the retention period, the system deletes the data")."""

import dagster as dg

from etl_assets import registry
from etl_assets.metadata.loader import LoadedModule
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource

DAY = 86_400


def expire_outbox(
    modules: list[LoadedModule], outbox: OutboxResource, postgres: PostgresResource
) -> list[tuple[str, str, float]]:
    """Delete unpublished outbox versions older than their module's retention; say which."""
    expired = []
    for loaded in modules:
        limit = loaded.model.retentionDays * DAY
        versions = outbox.versions(loaded.name)
        if not versions:
            continue
        with postgres.connect(autocommit=True) as conn:
            kept = registry.kept_versions(conn, loaded.name)
        for version in versions:
            if version in kept:
                continue
            age = outbox.age_seconds(loaded.name, version)
            if age is not None and age > limit:
                outbox.delete_version(loaded.name, version)
                expired.append((loaded.name, version, age / DAY))
    return expired


def build_retention_sensor(modules: list[LoadedModule]) -> dg.SensorDefinition:
    @dg.sensor(
        name="dm_outbox_retention",
        minimum_interval_seconds=3600,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Deletes prepared outbox versions that were not published within their"
        " module's retentionDays.",
    )
    def _retention(
        context: dg.SensorEvaluationContext, outbox: OutboxResource, postgres: PostgresResource
    ):
        expired = expire_outbox(modules, outbox, postgres)
        for module, version, days in expired:
            context.log.info(
                f"expired outbox version {module} {version}: not published after {days:.1f} days"
            )
        if not expired:
            return dg.SkipReason("no unpublished outbox version is past its retention")
        return dg.SkipReason(
            "expired " + ", ".join(f"{m} {v}" for m, v, _ in expired) + " (not published in time)"
        )

    return _retention
