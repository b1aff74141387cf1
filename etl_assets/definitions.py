"""The code location: every module under the modules folder as assets, checks, jobs, schedules and
sensors, with the resources chosen for this deployment. `defs` is what workspace.yaml loads;
it is built lazily (`@dg.definitions`), so importing this module builds nothing.

`load_catalog` is the one way modules are loaded: the code location and `dmetl validate` both use
it, so they accept and refuse exactly the same modules. Anything that goes wrong while loading or
building one module (its assets, schedule or sensor) becomes that module's error, shown as a
`<module>/invalid_metadata` asset, and the other modules load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from etl_assets.asset_metadata import with_console_links
from etl_assets.errors import MetadataError, Problem
from etl_assets.metadata import DataModule
from etl_assets.metadata.loader import LoadedModule, discover, display_path
from etl_assets.orchestration.factory import (
    ModuleDefinitions,
    build_isolated,
    check_loadable,
    internal_error,
    invalid_module_spec,
)
from resources.deployment import Deployment, configure_arrow, current, resources_for
from schedules import build_retention_jobs, build_schedule
from schedules.retention import OUTBOX_JOB, OUTBOX_SCHEDULE, VERSION_JOB, VERSION_SCHEDULE
from sensors import (
    build_approval_sensor,
    build_publish_sensor,
    build_run_failure_sensor,
    build_source_sensor,
)

log = logging.getLogger("datamodule_etl")


@dataclass
class BuiltModule:
    """A module that loaded and built: its definitions, schedule and source sensor."""

    definitions: ModuleDefinitions
    schedule: dg.ScheduleDefinition | None = None
    sensor: dg.SensorDefinition | None = None

    @property
    def name(self) -> str:
        return self.definitions.name

    @property
    def loaded(self) -> LoadedModule:
        return self.definitions.loaded

    @property
    def model(self) -> DataModule:
        return self.loaded.model


@dataclass
class Catalog:
    """Every module folder: the ones that built, and an error for each other one."""

    modules: list[BuiltModule] = field(default_factory=list)
    errors: list[MetadataError] = field(default_factory=list)

    def module(self, name: str) -> BuiltModule | None:
        return next((m for m in self.modules if m.name == name), None)

    def errors_of(self, name: str) -> list[MetadataError]:
        return [e for e in self.errors if Path(e.file).parent.name == name or e.file == name]


def _automation(built: ModuleDefinitions) -> BuiltModule | MetadataError:
    """The module's schedule and source sensor, and Dagster's check that all of it loads."""
    loaded = built.loaded
    try:
        module = BuiltModule(built, build_schedule(loaded), build_source_sensor(loaded))
        check_loadable(built, module.schedule, module.sensor)
    except Exception as exc:  # Dagster refusing a definition our validation let through
        return internal_error(loaded, "Dagster cannot load it", exc)
    return module


GLOBAL_NAMES = {
    "dm_approved_uploads",
    "dm_run_failure_alert",
    "dm_version_published_alert",
    OUTBOX_JOB,
    OUTBOX_SCHEDULE,
    VERSION_JOB,
    VERSION_SCHEDULE,
}


def _names(module: BuiltModule) -> set[str]:
    """The code-location-wide names a module defines (jobs, schedule, sensor)."""
    names = {job.name for job in module.definitions.jobs}
    names |= {d.name for d in (module.schedule, module.sensor) if d is not None}
    return names


def _collision(module: BuiltModule, taken: dict[str, str]) -> MetadataError | None:
    clash = sorted(n for n in _names(module) if n in taken or n in GLOBAL_NAMES)
    if not clash:
        return None
    owner = taken.get(clash[0], "the code location")
    return MetadataError(
        display_path(module.loaded.file),
        [Problem("name", f"{clash[0]!r} is also defined by {owner}; rename the module")],
    )


def load_catalog(
    modules_dir: Path | str, only: str | None = None, default_executor: str = "auto"
) -> Catalog:
    """Load, validate and build every module under `modules_dir` (or just the one named
    `only`), each in isolation; `default_executor` is the deployment's (`DM_EXECUTOR`)."""
    found = discover(modules_dir, only)
    catalog = Catalog(errors=list(found.errors))
    taken: dict[str, str] = {}
    for loaded in found.modules:
        built = build_isolated(loaded, default_executor)
        if isinstance(built, ModuleDefinitions):
            built = _automation(built)
        if isinstance(built, BuiltModule) and (clash := _collision(built, taken)):
            built = clash
        if isinstance(built, MetadataError):
            catalog.errors.append(built)
        else:
            taken.update({n: f"module {built.name!r}" for n in _names(built)})
            catalog.modules.append(built)
    return catalog


def build_definitions(
    modules_dir: Path | str | None = None, deployment: Deployment | None = None
) -> tuple[dg.Definitions, Catalog]:
    """Definitions for every module that builds; the others appear as placeholder assets."""
    deployment = deployment or current()
    catalog = load_catalog(
        modules_dir if modules_dir is not None else deployment.modules_dir,
        default_executor=deployment.executor,
    )
    loaded = [m.loaded for m in catalog.modules]
    assets, checks, jobs, schedules = [], [], [], []
    sensors = [build_run_failure_sensor(loaded), build_publish_sensor(loaded)]
    for module in catalog.modules:
        assets += module.definitions.assets
        checks += module.definitions.checks
        jobs += module.definitions.jobs
        schedules += [module.schedule] if module.schedule else []
        sensors += [module.sensor] if module.sensor else []
    jobs_by_name = {job.name: job for job in jobs}
    if (approvals := build_approval_sensor(loaded, jobs_by_name)) is not None:
        sensors.append(approvals)
    retention_jobs, retention_schedules = build_retention_jobs(loaded)
    jobs += retention_jobs
    schedules += retention_schedules
    taken = {m.name for m in catalog.modules}
    for error in catalog.errors:
        log.error("invalid data module metadata:\n%s", error)
        spec = invalid_module_spec(Path(error.file).parent, error, taken)
        taken.add(spec.key.path[0])
        assets.append(spec)
    assets = with_console_links(assets, deployment.web_url)
    definitions = dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=resources_for(deployment),
    )
    return definitions, catalog


@dg.definitions
def defs() -> dg.Definitions:
    configure_arrow()
    return build_definitions()[0]
