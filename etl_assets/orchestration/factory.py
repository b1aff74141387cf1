"""The asset factory: one data module becomes a partitioned Dagster asset graph.

Every stage package builds its own assets (`extract.assets`, `clean.assets`, `anonymize.assets`,
`publish.assets`); this module puts them together per module with its jobs, and turns anything
that goes wrong while building one module into that module's error.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from etl_assets._dagster_private import without_instance_state
from etl_assets.anonymize.assets import anonymize_asset, anonymize_checks
from etl_assets.anonymize.hierarchy import HierarchyError
from etl_assets.anonymize.spec import SpecError
from etl_assets.clean.assets import clean_asset, clean_checks
from etl_assets.errors import MetadataError, Problem
from etl_assets.extract.assets import extract_asset
from etl_assets.extract.units import extraction_units
from etl_assets.metadata import CollectionEntry, ScriptCollector
from etl_assets.metadata.loader import LoadedModule, display_path
from etl_assets.metadata.references import table_order
from etl_assets.orchestration.jobs import module_jobs
from etl_assets.publish.assets import outbox_asset, outbox_checks, upload_asset
from etl_assets.stages import StageKit
from resources.io_manager import IO_MANAGER_KEY, ParquetIOManager


@dataclass
class ModuleDefinitions:
    """What one module contributes to the code location."""

    loaded: LoadedModule
    partitions: dg.DynamicPartitionsDefinition
    assets: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    jobs: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.loaded.name


def entry_code_version(loaded: LoadedModule, entry: CollectionEntry) -> str:
    """Metadata hash, plus the script's own bytes for script sources (a script edit is a change)."""
    digest = hashlib.sha256(loaded.hash.encode())
    if isinstance(entry.extract, ScriptCollector):
        script = loaded.folder / entry.extract.path
        if script.is_file():
            digest.update(script.read_bytes())
    return digest.hexdigest()[:16]


def build_module(loaded: LoadedModule, default_executor: str = "auto") -> ModuleDefinitions:
    """Every asset, check and job of one validated module; `default_executor` is the
    deployment's executor for a module whose metadata names none."""
    with warnings.catch_warnings():
        # partitioned (blocking) asset checks are "preview" in Dagster 1.13; we rely on them so
        # that a check sees only its run's version
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _build_module(loaded, default_executor)


def _build_module(loaded: LoadedModule, default_executor: str) -> ModuleDefinitions:
    kit = StageKit.for_module(loaded, default_executor)
    out = ModuleDefinitions(loaded=loaded, partitions=kit.partitions)
    for unit in extraction_units(kit.model):
        out.assets.append(extract_asset(kit, unit, entry_code_version(loaded, unit.entry)))
    for table_name in table_order(kit.model):
        table = kit.model.table(table_name)
        out.assets.append(clean_asset(kit, table))
        out.checks.extend(clean_checks(kit, table))
        try:
            out.assets.append(anonymize_asset(kit, table))
            out.checks.extend(anonymize_checks(kit, table))
        except (SpecError, HierarchyError) as exc:
            index = kit.model.tables.index(table)
            where = f"tables[{index}].privacy" if table.privacy else f"tables[{index}].columns"
            raise MetadataError(display_path(loaded.file), [Problem(where, str(exc))]) from None
        out.assets.append(outbox_asset(kit, table))
        out.checks.extend(outbox_checks(kit, table))
    out.assets.append(upload_asset(kit))
    out.jobs.extend(module_jobs(kit))
    return out


def build_isolated(
    loaded: LoadedModule, default_executor: str = "auto"
) -> ModuleDefinitions | MetadataError:
    """`build_module`, with anything it raises turned into that module's error."""
    try:
        return build_module(loaded, default_executor)
    except MetadataError as exc:
        return exc
    except Exception as exc:  # Dagster refusing a definition our validation let through
        return internal_error(loaded, "cannot build its assets", exc)


def internal_error(loaded: LoadedModule, what: str, exc: Exception) -> MetadataError:
    """A module's error for an exception our validation should have prevented (see
    `MetadataError.internal`): the module is isolated, and the message says what refused it."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return MetadataError(
        display_path(loaded.file),
        [Problem("", f"{what} ({type(exc).__name__}: {text[:300]})")],
        internal=True,
    )


def check_loadable(built: ModuleDefinitions, *automation: object) -> None:
    """Dagster's validation of the module's definitions (and its schedule and sensors) as the
    code location will load them; resources are placeholders: only their keys matter here."""
    placeholders: dict[str, object] = {
        k: dg.ResourceDefinition.none_resource()
        for k in ("postgres", "outbox", "secrets", "privacy", "governance")
    }
    placeholders[IO_MANAGER_KEY] = ParquetIOManager(base_dir="unused")
    with warnings.catch_warnings(), without_instance_state():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        dg.Definitions.validate_loadable(
            dg.Definitions(
                assets=built.assets,
                asset_checks=built.checks,
                jobs=built.jobs,
                schedules=[a for a in automation if isinstance(a, dg.ScheduleDefinition)],
                sensors=[a for a in automation if isinstance(a, dg.SensorDefinition)],
                resources=placeholders,
            )
        )


def invalid_module_spec(
    folder: Path, error: MetadataError, taken: set[str] = frozenset()
) -> dg.AssetSpec:
    """A placeholder asset that shows a module's metadata errors in the UI (its first key part
    is the folder's name, made unique against `taken`)."""
    base = re.sub(r"[^a-z0-9_]", "_", folder.name.lower())[:60] or "module"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return dg.AssetSpec(
        key=dg.AssetKey([name, "invalid_metadata"]),
        group_name=name if name[0].isalpha() else f"m_{name}_invalid",
        description="**This module's metadata is invalid; its assets are not loaded.**\n\n"
        "```\n" + str(error) + "\n```\n\nFix the file and reload the code location.",
        kinds={"json"},
        metadata={"errors": dg.MetadataValue.md("```\n" + str(error) + "\n```")},
    )
