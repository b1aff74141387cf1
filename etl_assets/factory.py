"""The asset factory: one data module becomes a partitioned Dagster asset graph.

Keys are `<module>/<stage>/<table>`: `extract/<table>__<source>` per collection entry, then
`clean`, `anonymize`, `outbox` and `upload` per table. Every asset is partitioned by the
module's versions (a DynamicPartitionsDefinition) and carries the canonical metadata hash as
its code version, so changing the metadata shows the assets as changed in the UI.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from etl_assets.errors import MetadataError
from etl_assets.loader import LoadedModule
from etl_assets.model import CollectionEntry, DataModule, ScriptCollector
from etl_assets.references import table_order
from etl_assets.versions import partitions_def_name

STAGES = ("extract", "clean", "anonymize", "outbox", "upload")
IO_MANAGER_KEY = "dm_io_manager"
CONNECTOR_KINDS = {
    "file": "file",
    "script": "python",
    "postgres": "postgres",
    "rest": "api",
    "sftp": "sftp",
    "kafka": "kafka",
    "s3": "s3",
}


@dataclass
class ModuleDefinitions:
    """What one module contributes to the code location."""

    name: str
    partitions: dg.DynamicPartitionsDefinition
    assets: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    jobs: list = field(default_factory=list)
    schedules: list = field(default_factory=list)
    sensors: list = field(default_factory=list)


def key(module: str, stage: str, name: str) -> dg.AssetKey:
    return dg.AssetKey([module, stage, name])


def entry_name(entry: CollectionEntry) -> str:
    return f"{entry.table}__{entry.source}"


@dataclass(frozen=True)
class ExtractionUnit:
    """One extraction step: a collection entry, or one shard of a sharded entry."""

    name: str
    entry: CollectionEntry
    shard: str | None = None


def extraction_units(model: DataModule, table: str | None = None) -> list[ExtractionUnit]:
    """Every extraction step, in collection order; a sharded source gives one per shard."""
    units = []
    for entry in model.collection:
        if table is not None and entry.table != table:
            continue
        shards = getattr(entry.extract, "shards", None)
        if shards:
            for shard in shards:
                single = entry.model_copy(
                    update={
                        "extract": entry.extract.model_copy(
                            update={"shards": None, "connection": shard}
                        )
                    }
                )
                units.append(ExtractionUnit(f"{entry_name(entry)}__{shard}", single, shard))
        else:
            units.append(ExtractionUnit(entry_name(entry), entry))
    return units


def _owners(model: DataModule) -> list[str]:
    return list(model.owners)  # validated by the model: e-mail or team:<name>


def retry_policy(model: DataModule) -> dg.RetryPolicy | None:
    r = model.retry
    if r.maxRetries == 0:
        return None
    return dg.RetryPolicy(
        max_retries=r.maxRetries,
        delay=r.delaySeconds,
        backoff=dg.Backoff.EXPONENTIAL if r.backoff == "exponential" else dg.Backoff.LINEAR,
        jitter={"none": None, "full": dg.Jitter.FULL, "plus_minus": dg.Jitter.PLUS_MINUS}[r.jitter],
    )


def entry_code_version(loaded: LoadedModule, entry: CollectionEntry) -> str:
    """Metadata hash, plus the script's own bytes for script sources (a script edit is a change)."""
    digest = hashlib.sha256(loaded.hash.encode())
    if isinstance(entry.extract, ScriptCollector):
        script = loaded.folder / entry.extract.path
        if script.is_file():
            digest.update(script.read_bytes())
    return digest.hexdigest()[:16]


def common_metadata(loaded: LoadedModule, version: str) -> dict[str, object]:
    return {
        "dm/module": loaded.name,
        "dm/version": version,
        "dm/metadata_hash": loaded.hash,
    }


def build_module(loaded: LoadedModule) -> ModuleDefinitions:
    """Every asset, check, job and schedule of one validated module."""
    with warnings.catch_warnings():
        # partitioned (blocking) asset checks are "preview" in Dagster 1.13; we rely on them so
        # that a check sees only its run's version
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _build_module(loaded)


def _build_module(loaded: LoadedModule) -> ModuleDefinitions:
    model = loaded.model
    m = model.name
    partitions = dg.DynamicPartitionsDefinition(name=partitions_def_name(m))
    out = ModuleDefinitions(name=m, partitions=partitions)
    retry = retry_policy(model)
    owners = _owners(model)
    tags = {"dm/status": model.status}

    from etl_assets import stage_assets  # the per-stage compute functions

    for unit in extraction_units(model):
        out.assets.append(
            stage_assets.extract_asset(
                loaded,
                unit,
                partitions,
                retry,
                owners,
                tags,
                entry_code_version(loaded, unit.entry),
            )
        )
    for table_name in table_order(model):
        table = model.table(table_name)
        out.assets.append(stage_assets.clean_asset(loaded, table, partitions, retry, owners, tags))
        out.checks.extend(stage_assets.clean_checks(loaded, table, partitions))
        out.assets.append(
            stage_assets.anonymize_asset(loaded, table, partitions, retry, owners, tags)
        )
        out.assets.append(stage_assets.outbox_asset(loaded, table, partitions, retry, owners, tags))
        out.checks.extend(stage_assets.outbox_checks(loaded, table, partitions))
    out.assets.append(stage_assets.upload_asset(loaded, partitions, owners, tags))

    out.jobs.append(
        dg.define_asset_job(
            name=prepare_job_name(m),
            selection=dg.AssetSelection.groups(m) - dg.AssetSelection.key_prefixes([m, "upload"]),
            partitions_def=partitions,
            description=f"Extract, clean, anonymize and stage a new version of {m} in the outbox.",
            tags={"dm/module": m},
        )
    )
    out.jobs.append(
        dg.define_asset_job(
            name=upload_job_name(m),
            selection=dg.AssetSelection.key_prefixes([m, "upload"]),
            partitions_def=partitions,
            description=f"Publish an outbox version of {m} (needs approval unless autoUpload).",
            tags={"dm/module": m},
        )
    )
    out.jobs.append(
        dg.define_asset_job(
            name=job_name(m),
            selection=dg.AssetSelection.groups(m),
            partitions_def=partitions,
            description=f"The whole graph of {m}: extract through upload.",
            tags={"dm/module": m},
        )
    )
    return out


def job_name(module: str) -> str:
    return f"{module}_job"


def prepare_job_name(module: str) -> str:
    return f"{module}_prepare_job"


def upload_job_name(module: str) -> str:
    return f"{module}_upload_job"


def invalid_module_spec(folder: Path, error: MetadataError) -> dg.AssetSpec:
    """A placeholder asset that shows a module's metadata errors in the UI."""
    name = re.sub(r"[^a-z0-9_]", "_", folder.name.lower()) or "module"
    return dg.AssetSpec(
        key=dg.AssetKey([name, "invalid_metadata"]),
        group_name=f"{name}_invalid" if not name[0].isalpha() else name,
        description="**This module's metadata is invalid; its assets are not loaded.**\n\n"
        "```\n" + str(error) + "\n```\n\nFix the file and reload the code location.",
        kinds={"json"},
        metadata={"errors": dg.MetadataValue.md("```\n" + str(error) + "\n```")},
    )
