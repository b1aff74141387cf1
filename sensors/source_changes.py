"""Run a module again when its file sources or scripts change (seed 002's change detection).

The cursor holds a fingerprint (path, size, mtime) of every file a module's file sources match
and of its scripts; a change allocates the next version, adds its partition and requests a run.
"""

import hashlib
import json

import dagster as dg

from etl_assets.extract.files import resolve_paths
from etl_assets.metadata import FileConnector, ScriptCollector
from etl_assets.metadata.loader import LoadedModule
from etl_assets.orchestration.jobs import source_sensor_name, triggered_job_name
from etl_assets.orchestration.versions import allocate
from etl_assets.stages import partitions_def_name
from resources.postgres import PostgresResource


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
        name=source_sensor_name(m),
        job_name=triggered_job_name(m, model.autoUpload),
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Starts a new version of {m} when its source files or scripts change.",
    )
    def _sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
        current = fingerprint(loaded)
        if context.cursor == current:
            return dg.SkipReason("no source file changed")
        if context.cursor is None:
            # first evaluation: remember the state, do not run for files that were already there
            return dg.SensorResult(cursor=current, skip_reason="recorded the current sources")
        version = allocate(
            context.instance, postgres, loaded, trigger="source_change", add_partition=False
        )
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
