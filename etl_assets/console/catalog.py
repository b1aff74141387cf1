"""The modules as the console lists them: status, schedule and sensor state, owners,
connections and scripts, read from the metadata folder and the instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from etl_assets.metadata.loader import LoadedModule, discover
from sensors.source_changes import has_local_sources


@dataclass(frozen=True)
class Automation:
    name: str
    kind: str  # schedule | sensor
    running: bool


@dataclass(frozen=True)
class ModuleSummary:
    loaded: LoadedModule
    automation: list[Automation] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def model(self):
        return self.loaded.model

    @property
    def scripts(self) -> list[str]:
        """The module's scripts (extraction and upload), relative to its folder."""
        paths = [e.extract.path for e in self.model.collection if e.extract.type == "script"]
        if self.model.upload.script is not None:
            paths.append(self.model.upload.script.path)
        return sorted(set(paths))

    @property
    def schedule_state(self) -> str:
        if not self.automation:
            return "no schedule or sensor"
        running = [a for a in self.automation if a.running]
        if not running:
            return "paused"
        return "running: " + ", ".join(a.name for a in running)

    @property
    def paused(self) -> bool:
        return bool(self.automation) and not any(a.running for a in self.automation)


def stored_states(instance: dg.DagsterInstance) -> dict[str, bool]:
    """Instigator name -> running, for schedules and sensors someone turned on or off."""
    states = {}
    for state in instance.all_instigator_state():
        status = getattr(state.status, "value", str(state.status))
        if status in ("RUNNING", "STOPPED"):
            states[state.instigator_name] = status == "RUNNING"
    return states


def automation_of(loaded: LoadedModule, stored: dict[str, bool]) -> list[Automation]:
    """The module's schedule and source sensor, with their state (the code's default until
    someone turns one on or off)."""
    model, out = loaded.model, []
    if model.schedule is not None:
        name = f"{model.name}_schedule"
        out.append(Automation(name, "schedule", stored.get(name, model.status == "released")))
    if has_local_sources(loaded):
        name = f"{model.name}_source_changes"
        out.append(Automation(name, "sensor", stored.get(name, False)))
    return out


def modules(modules_dir: Path, instance: dg.DagsterInstance) -> tuple[list[ModuleSummary], list]:
    """Every valid module (with its automation), and the metadata errors of the others."""
    found = discover(modules_dir)
    stored = stored_states(instance)
    summaries = [ModuleSummary(m, automation_of(m, stored)) for m in found.modules]
    return sorted(summaries, key=lambda s: s.name), found.errors


def module(modules_dir: Path, instance: dg.DagsterInstance, name: str) -> ModuleSummary | None:
    found = discover(modules_dir, only=name)
    loaded = next((m for m in found.modules if m.name == name), None)
    if loaded is None:
        return None
    return ModuleSummary(loaded, automation_of(loaded, stored_states(instance)))
