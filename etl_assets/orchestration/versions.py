"""The version allocator: the one way schedules, sensors and the CLI get a version to run.

A version number is handed out once, under a per-module lock in the registry's PostgreSQL, after
the highest of the metadata's `version`, every partition of the module, every version already
handed out and every published one. So two triggers at the same moment (a schedule tick and a
sensor, or ten `dmetl run`s) get different versions. Asking for a given version (`dmetl run
--version`, a re-run) is refused while another run of that version is in progress.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import psycopg

from etl_assets import registry, semver
from etl_assets.metadata.loader import LoadedModule
from etl_assets.stages import partitions_def_name
from resources.postgres import PostgresResource

ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
    dg.DagsterRunStatus.SUSPENDED,
]
# a version handed to a run id the instance has not seen yet is held this long
STARTING_GRACE = dt.timedelta(minutes=10)


class VersionRefused(RuntimeError):
    """The version cannot be run now; the message says why (e.g. the run that holds it)."""


def active_runs(instance: dg.DagsterInstance, module: str, version: str) -> list[str]:
    """Ids of the module's runs of `version` that have not ended."""
    records = instance.get_run_records(
        dg.RunsFilter(tags={"dm/module": module, "dagster/partition": version}, statuses=ACTIVE),
        limit=5,
    )
    return [r.dagster_run.run_id for r in records]


def _holder(
    instance: dg.DagsterInstance, cur: psycopg.Cursor, module: str, version: str
) -> str | None:
    """The run that holds `version` now, if any (a running run, or one about to start)."""
    running = active_runs(instance, module, version)
    if running:
        return running[0]
    held = registry.allocation(cur, module, version)
    if held and held["run_id"] and instance.get_run_by_id(held["run_id"]) is None:
        if dt.datetime.now(dt.UTC) - held["allocated_at"] < STARTING_GRACE:
            return held["run_id"]
    return None


def allocate(
    instance: dg.DagsterInstance,
    postgres: PostgresResource,
    loaded: LoadedModule,
    *,
    trigger: str,
    version: str | None = None,
    run_id: str | None = None,
    add_partition: bool = True,
) -> str:
    """A version for a new run of `loaded`: the next one, or `version` if it is free.

    The version's partition exists when this returns, unless `add_partition` is off (a sensor
    adds it through its `SensorResult`). `run_id` (when the caller knows it) is recorded so that
    a concurrent request for the same version can name the run that holds it.
    """
    module = loaded.name
    if version is not None and not semver.is_version(version):
        raise VersionRefused(f"{module}: {version!r} is not a MAJOR.MINOR.PATCH version")
    pname = partitions_def_name(module)
    with postgres.connect(autocommit=True) as conn:
        registry.ensure(conn)
        if version is not None and registry.is_discarded(conn, module, version):
            raise VersionRefused(
                f"{module} {version} was discarded (dmetl stop --discard); run another version"
            )
        with conn.transaction(), conn.cursor() as cur:
            registry.lock_module(cur, module)
            if version is None:
                taken = [
                    *instance.get_dynamic_partitions(pname),
                    *registry.allocated_versions(cur, module),
                    *registry.published_versions(cur, module),
                ]
                version = semver.next_version(loaded.model.version, taken)
            elif holder := _holder(instance, cur, module, version):
                raise VersionRefused(
                    f"{module} {version} is already being run by run {holder}; wait for it to"
                    " finish or cancel it, or run the next version"
                )
            registry.record_allocation(cur, module, version, trigger, run_id)
            if add_partition and version not in instance.get_dynamic_partitions(pname):
                instance.add_dynamic_partitions(pname, [version])
    return version
