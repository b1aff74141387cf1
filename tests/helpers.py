"""Helpers for tests: write modules, run a module's job for a version on a given instance."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from etl_assets.factory import build_module, job_name
from etl_assets.jsonld import CONTEXT_URL as CONTEXT  # noqa: F401 - tests build modules with it
from etl_assets.loader import load_module
from etl_assets.versions import partitions_def_name


def write_module(folder: Path, doc: dict, files: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "module.jsonld").write_text(json.dumps(doc, indent=2))
    for name, text in (files or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def run_version(
    folder: Path,
    version: str,
    resources: dict,
    instance: dg.DagsterInstance,
    job: str | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize the module's whole graph for `version` (adding the partition first)."""
    loaded = load_module(folder)
    md = build_module(loaded)
    instance.add_dynamic_partitions(partitions_def_name(loaded.name), [version])
    defs = dg.Definitions(
        assets=md.assets, asset_checks=md.checks, jobs=md.jobs, resources=resources
    )
    return defs.resolve_job_def(job or job_name(loaded.name)).execute_in_process(
        instance=instance, partition_key=version, raise_on_error=False
    )


def materializations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, ...], dict]:
    out = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            out[tuple(mat.asset_key.path)] = {
                k: getattr(v, "value", v) for k, v in mat.metadata.items()
            }
    return out
