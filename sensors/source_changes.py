"""Run a module again when its file sources or scripts change (seed 002's change detection).

The cursor holds a fingerprint (path, size, mtime) of every file a module's file sources match
and of its scripts; a change adds the next version partition and requests a run of it.
"""

import hashlib
import json

import dagster as dg

from etl_assets.extract.files import resolve_paths
from etl_assets.factory import job_name, prepare_job_name
from etl_assets.loader import LoadedModule
from etl_assets.model import FileConnector, ScriptCollector
from etl_assets.versions import next_version, partitions_def_name


def fingerprint(loaded: LoadedModule) -> str:
    """A hash of the size and modification time of every local input of the module."""
    items = []
    for entry in loaded.model.collection:
        ext = entry.extract
        if isinstance(ext, FileConnector):
            paths = resolve_paths(ext.path, loaded.folder)
        elif isinstance(ext, ScriptCollector):
            paths = [loaded.folder / ext.path]
        else:
            continue
        for p in paths:
            st = p.stat() if p.exists() else None
            items.append([str(p), st.st_size if st else -1, st.st_mtime_ns if st else -1])
    items.append(["metadata", loaded.hash])
    return hashlib.sha256(json.dumps(sorted(items)).encode()).hexdigest()


def has_local_sources(loaded: LoadedModule) -> bool:
    return any(
        isinstance(e.extract, FileConnector | ScriptCollector) for e in loaded.model.collection
    )


def build_source_sensor(loaded: LoadedModule) -> dg.SensorDefinition | None:
    if not has_local_sources(loaded):
        return None
    model = loaded.model
    m = model.name

    @dg.sensor(
        name=f"{m}_source_changes",
        job_name=job_name(m) if model.autoUpload else prepare_job_name(m),
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Starts a new version of {m} when its source files or scripts change.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        current = fingerprint(loaded)
        if context.cursor == current:
            return dg.SkipReason("no source file changed")
        if context.cursor is None:
            # first evaluation: remember the state, do not run for files that were already there
            return dg.SensorResult(cursor=current, skip_reason="recorded the current sources")
        existing = context.instance.get_dynamic_partitions(partitions_def_name(m))
        version = next_version(model.version, existing)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{m}:{version}",
                    partition_key=version,
                    tags={"dm/module": m, "dm/trigger": "source_change"},
                )
            ],
            dynamic_partitions_requests=[
                dg.AddDynamicPartitionsRequest(partitions_def_name(m), [version])
            ],
            cursor=current,
        )

    return _sensor
