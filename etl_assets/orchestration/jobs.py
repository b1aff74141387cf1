"""The jobs of a module: the whole graph, the prepare part (everything but the upload), and the
upload alone (run after an approval)."""

from __future__ import annotations

import dagster as dg

from etl_assets.stages import StageKit


def job_name(module: str) -> str:
    return f"{module}_job"


def prepare_job_name(module: str) -> str:
    return f"{module}_prepare_job"


def upload_job_name(module: str) -> str:
    return f"{module}_upload_job"


def triggered_job_name(module: str, auto_upload: bool) -> str:
    """What schedules, sensors and `dmetl run` start: everything, or up to the outbox."""
    return job_name(module) if auto_upload else prepare_job_name(module)


def module_jobs(kit: StageKit) -> list[dg.UnresolvedAssetJobDefinition]:
    m = kit.module
    tags = {"dm/module": m}
    return [
        dg.define_asset_job(
            name=prepare_job_name(m),
            selection=dg.AssetSelection.groups(m) - dg.AssetSelection.key_prefixes([m, "upload"]),
            partitions_def=kit.partitions,
            description=f"Extract, clean, anonymize and stage a new version of {m} in the outbox.",
            tags=tags,
        ),
        dg.define_asset_job(
            name=upload_job_name(m),
            selection=dg.AssetSelection.key_prefixes([m, "upload"]),
            partitions_def=kit.partitions,
            description=f"Publish an outbox version of {m} (needs approval unless autoUpload).",
            tags=tags,
        ),
        dg.define_asset_job(
            name=job_name(m),
            selection=dg.AssetSelection.groups(m),
            partitions_def=kit.partitions,
            description=f"The whole graph of {m}: extract through upload.",
            tags=tags,
        ),
    ]
