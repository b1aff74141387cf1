"""The code location: every module under `datamodules/` as assets, checks, jobs, schedules and
sensors, with the resources chosen for this deployment. `defs` is what workspace.yaml loads."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import dagster as dg

from etl_assets.factory import IO_MANAGER_KEY, build_module, invalid_module_spec
from etl_assets.loader import Discovery, discover
from resources import OutboxResource, ParquetIOManager, PostgresResource
from schedules import build_schedule
from sensors import (
    build_approval_sensor,
    build_retention_sensor,
    build_source_sensor,
    run_failure_alert,
)

log = logging.getLogger("datamodule_etl")


def resources_for_environment() -> dict[str, object]:
    """Resources from the environment; unset parts fall back to the embedded local defaults."""
    postgres = (
        PostgresResource(url=dg.EnvVar("DM_POSTGRES_URL"))
        if os.environ.get("DM_POSTGRES_URL")
        else PostgresResource()
    )
    outbox_config = {}
    if os.environ.get("DM_OUTBOX_ROOT"):  # a folder, or s3://bucket/prefix
        outbox_config["root"] = dg.EnvVar("DM_OUTBOX_ROOT")
    if os.environ.get("DM_S3_ENDPOINT_URL"):
        outbox_config["s3_endpoint_url"] = dg.EnvVar("DM_S3_ENDPOINT_URL")
    outbox = OutboxResource(**outbox_config)
    return {
        "postgres": postgres,
        "outbox": outbox,
        IO_MANAGER_KEY: ParquetIOManager(),
    }


def build_definitions(modules_dir: Path | str | None = None) -> tuple[dg.Definitions, Discovery]:
    """Definitions for every valid module; invalid ones appear as placeholder assets."""
    found = discover(modules_dir)
    assets, checks, jobs, schedules, sensors = [], [], [], [], [run_failure_alert]
    for loaded in found.modules:
        md = build_module(loaded)
        assets += md.assets
        checks += md.checks
        jobs += md.jobs
        if (schedule := build_schedule(loaded)) is not None:
            schedules.append(schedule)
        if (sensor := build_source_sensor(loaded)) is not None:
            sensors.append(sensor)
    jobs_by_name = {job.name: job for job in jobs}
    if (approvals := build_approval_sensor(found.modules, jobs_by_name)) is not None:
        sensors.append(approvals)
    if found.modules:
        sensors.append(build_retention_sensor(found.modules))
    for error in found.errors:
        log.error("invalid data module metadata:\n%s", error)
        assets.append(invalid_module_spec(Path(error.file).parent, error))
    defs = dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=resources_for_environment(),
    )
    return defs, found


defs, discovery = build_definitions()
