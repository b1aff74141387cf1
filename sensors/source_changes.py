"""Run a module again when its sources change (seed 002's change detection).

One sensor per module watches every source it can: local files and scripts (path, size, mtime),
S3 objects (key + ETag), a PostgreSQL `watermarkQuery`, Kafka messages past the committed
offsets, SFTP file contents (see `sensors/source_probes.py`), plus the metadata hash. The cursor
holds a hash per source; whatever changed between two evaluations — one file or a burst across
every source — is one change set: the next version is allocated, its partition added and one
run requested. While a source-change run of the module is still queued or running, new changes
wait for it to end (and then make one version together), so a burst never stacks up versions.
The first evaluation only records the sources; a source that cannot be read keeps its last
fingerprint (the tick says which), so an outage never looks like a change.
"""

from __future__ import annotations

import hashlib
import json

import dagster as dg

from etl_assets.extract.context import ExtractContext
from etl_assets.extract.files import resolve_paths
from etl_assets.metadata import FileConnector, ScriptCollector
from etl_assets.metadata.loader import LoadedModule
from etl_assets.orchestration.jobs import source_sensor_name, triggered_job_name
from etl_assets.orchestration.versions import ACTIVE, allocate
from etl_assets.stages import partitions_def_name
from resources.deployment import SecretsResource
from resources.postgres import PostgresResource
from sensors.source_probes import digest, prober, source_key

LOCAL = "local files"


def fingerprint(loaded: LoadedModule) -> str:
    """A hash of the size and modification time of every local input of the module."""
    items = []
    for entry in loaded.model.collection:
        if not entry.watch:
            continue
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
        e.watch and isinstance(e.extract, FileConnector | ScriptCollector)
        for e in loaded.model.collection
    )


def watched(loaded: LoadedModule) -> bool:
    """Whether the module has any source the sensor can watch."""
    return has_local_sources(loaded) or any(prober(e) for e in loaded.model.collection)


def observe(
    loaded: LoadedModule, secrets: SecretsResource, previous: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """A hash per source now, and the sources that could not be read (keeping their last hash)."""
    state = {LOCAL: fingerprint(loaded)}
    failed = []
    ctx = ExtractContext(module=loaded.model, folder=loaded.folder, secrets=secrets)
    for entry in loaded.model.collection:
        probe = prober(entry)
        if probe is None:
            continue
        key = source_key(entry)
        try:
            seen = probe(entry, ctx)
            if seen is not None:
                state[key] = digest(seen)
            elif key in previous:  # nothing new at the source (see source_probes)
                state[key] = previous[key]
        except Exception as exc:  # any failure to read a source: not a change
            failed.append(f"{key} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
            if key in previous:
                state[key] = previous[key]
    return state, failed


def _cursor(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {LOCAL: text}  # a cursor written before remote sources were watched
    return data if isinstance(data, dict) else {LOCAL: text}


def _busy(instance: dg.DagsterInstance, module: str) -> str | None:
    records = instance.get_run_records(
        dg.RunsFilter(tags={"dm/module": module, "dm/trigger": "source_change"}, statuses=ACTIVE),
        limit=1,
    )
    return records[0].dagster_run.run_id if records else None


def build_source_sensor(loaded: LoadedModule) -> dg.SensorDefinition | None:
    if not watched(loaded):
        return None
    model = loaded.model
    m = model.name

    @dg.sensor(
        name=source_sensor_name(m),
        job_name=triggered_job_name(m, model.autoUpload),
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Starts a new version of {m} when its sources change (files, scripts, S3"
        " objects, a PostgreSQL watermark, Kafka messages, SFTP files).",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, postgres: PostgresResource, secrets: SecretsResource
    ):
        before = _cursor(context.cursor)
        current, failed = observe(loaded, secrets, before or {})
        unread = f"; could not read {', '.join(failed)}" if failed else ""
        for line in failed:
            context.log.warning(f"source not read, kept its last state: {line}")
        if before is None:
            # first evaluation: remember the state, do not run for what was already there
            return dg.SensorResult(
                cursor=json.dumps(current), skip_reason="recorded the current sources" + unread
            )
        changed = sorted(k for k in current if k in before and before[k] != current[k])
        # a source seen for the first time (an older cursor, a source that was down) is only
        # recorded: a new source in the metadata changes the metadata hash under LOCAL anyway
        if not changed:
            return dg.SkipReason("no source changed" + unread)
        if holder := _busy(context.instance, m):
            return dg.SkipReason(
                f"{', '.join(changed)} changed; waiting for run {holder} to end (the changes"
                " will make one version)" + unread
            )
        version = allocate(
            context.instance, postgres, loaded, trigger="source_change", add_partition=False
        )
        context.log.info(f"{m} {version}: changed sources: {', '.join(changed)}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{m}:{version}",
                    partition_key=version,
                    tags={
                        "dm/module": m,
                        "dm/trigger": "source_change",
                        "dm/changed_sources": ",".join(changed)[:255],
                    },
                )
            ],
            dynamic_partitions_requests=[
                dg.AddDynamicPartitionsRequest(partitions_def_name(m), [version])
            ],
            cursor=json.dumps(current),
        )

    return _sensor
