"""Helpers for tests: write modules, run a module's job for a version on a given instance."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import dagster as dg
import psycopg

from etl_assets._dagster_private import without_instance_state
from etl_assets.cli.modules import TEMPLATE
from etl_assets.metadata.jsonld import CONTEXT_URL as CONTEXT  # noqa: F401 - tests build modules with it
from etl_assets.metadata.loader import load_module
from etl_assets.orchestration.factory import build_module
from etl_assets.orchestration.jobs import job_name
from etl_assets.stages import partitions_def_name


def write_module(folder: Path, doc: dict, files: dict[str, str] | None = None) -> Path:
    """The module's metadata and `files`; a file source that `files` does not give gets a
    header-only CSV of its table's columns (the loader checks that sources exist)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "module.jsonld").write_text(json.dumps(doc, indent=2))
    files = dict(files or {})
    columns = {
        t.get("name"): [c.get("name") for c in t.get("columns", [])]
        for t in doc.get("tables", [])
        if isinstance(t, dict)
    }
    for entry in doc.get("collection", []):
        extract = entry.get("extract", {}) if isinstance(entry, dict) else {}
        path = extract.get("path") if extract.get("type") == "file" else None
        if isinstance(path, str) and not any(ch in path for ch in "*?[") and path not in files:
            if not (folder / path).exists():
                files[path] = ",".join(map(str, columns.get(entry.get("table"), []))) + "\n"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def scaffold_module(folder: Path, name: str, version: str = "0.9.0") -> Path:
    """The `dmetl new` template as module `name` (items from a CSV file and a script)."""
    shutil.copytree(TEMPLATE, folder)
    meta = folder / "module.yaml"
    meta.write_text(meta.read_text().replace("__NAME__", name).replace("0.1.0", version))
    return folder


def write_items(folder: Path, n: int) -> int:
    """`n` catalogue items in a scaffolded module (ids from 100, so none conflicts with the
    template script's items 3 and 4); returns the rows a version publishes."""
    lines = ["item_id,label,price,added_on"]
    lines += [f"{100 + i},item {i},1.5,2026-01-10" for i in range(n)]
    (folder / "data" / "items.csv").write_text("\n".join(lines) + "\n")
    return n + 2


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
    # resolving reads the defs state of whatever instance the process last entered; one
    # another test left behind, disposed, fails it with "undefined DagsterInstance weakref"
    with without_instance_state():
        job_def = defs.resolve_job_def(job or job_name(loaded.name))
    return job_def.execute_in_process(
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


def scratch_database(request, server_url: str, prefix: str) -> str:
    """A fresh database for a fixture, dropped when the fixture ends (a unique
    name, so two runs of the same file never share one and none is left behind)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    request.addfinalizer(drop)
    return psycopg.conninfo.make_conninfo(server_url, dbname=name)
