"""The jobs of a module: the whole graph, the prepare part (everything but the upload), and the
upload alone (run after an approval). Their executor and run tags (module, connections, run pod)
come from `etl_assets.execution`."""

from __future__ import annotations

import dagster as dg

from etl_assets.execution import executor_for, run_tags
from etl_assets.stages import STAGES, StageKit

PREPARE_STAGES = tuple(s for s in STAGES if s != "upload")


def job_name(module: str) -> str:
    return f"{module}_job"


def prepare_job_name(module: str) -> str:
    return f"{module}_prepare_job"


def upload_job_name(module: str) -> str:
    return f"{module}_upload_job"


def schedule_name(module: str) -> str:
    return f"{module}_schedule"


def source_sensor_name(module: str) -> str:
    return f"{module}_source_changes"


def automation_names(module: str) -> set[str]:
    """The schedules and sensors that belong to one module (run control pauses these)."""
    return {schedule_name(module), source_sensor_name(module)}


def triggered_job_name(module: str, auto_upload: bool) -> str:
    """What schedules, sensors and `dmetl run` start: everything, or up to the outbox."""
    return job_name(module) if auto_upload else prepare_job_name(module)


def module_jobs(kit: StageKit) -> list[dg.UnresolvedAssetJobDefinition]:
    m = kit.module
    executor = executor_for(kit.model, kit.default_executor)

    def tags(stages: tuple[str, ...]) -> dict:
        return run_tags(kit.model, stages, kit.default_executor)

    return [
        dg.define_asset_job(
            name=prepare_job_name(m),
            selection=dg.AssetSelection.groups(m) - dg.AssetSelection.key_prefixes([m, "upload"]),
            partitions_def=kit.partitions,
            description=f"Extract, clean, anonymize and stage a new version of {m} in the outbox.",
            tags=tags(PREPARE_STAGES),
            executor_def=executor,
        ),
        dg.define_asset_job(
            name=upload_job_name(m),
            selection=dg.AssetSelection.key_prefixes([m, "upload"]),
            partitions_def=kit.partitions,
            description=f"Publish an outbox version of {m} (needs approval unless autoUpload).",
            tags=tags(("upload",)),
            executor_def=executor,
        ),
        dg.define_asset_job(
            name=job_name(m),
            selection=dg.AssetSelection.groups(m),
            partitions_def=kit.partitions,
            description=f"The whole graph of {m}: extract through upload.",
            tags=tags(STAGES),
            executor_def=executor,
        ),
    ]
