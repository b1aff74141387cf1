"""The code location: `defs` loads, every example module has its five stages and partitions."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from etl_assets.definitions import build_definitions
from etl_assets.stages import STAGES
from tests.conftest import EXAMPLES, ROOT
from tests.helpers import CONTEXT, write_module


def test_defs_loads_every_example_module_with_five_stages():
    defs, found = build_definitions(EXAMPLES)
    assert not found.errors, [str(e) for e in found.errors]
    graph = defs.resolve_asset_graph()
    for loaded in found.modules:
        keys = [k for k in graph.get_all_asset_keys() if k.path[0] == loaded.name]
        assert {k.path[1] for k in keys} == set(STAGES)
        for key in keys:
            node = graph.get(key)
            assert node.group_name == loaded.name
            assert isinstance(node.partitions_def, dg.DynamicPartitionsDefinition)
            assert node.partitions_def.name == f"{loaded.name}_versions"
            assert node.code_version is not None
        # extraction is keyed per collection entry, the other stages per table
        extract = {k.path[2] for k in keys if k.path[1] == "extract"}
        assert extract == {f"{e.table}__{e.source}" for e in loaded.model.collection}
        for stage in ("clean", "anonymize", "outbox", "upload"):
            assert {k.path[2] for k in keys if k.path[1] == stage} == {
                t.name for t in loaded.model.tables
            }
        assert defs.resolve_job_def(f"{loaded.name}_job")


def test_foreign_keys_are_lineage():
    defs, _ = build_definitions(EXAMPLES)
    graph = defs.resolve_asset_graph()
    parents = graph.get(dg.AssetKey(["clinic", "clean", "visits"])).parent_keys
    assert dg.AssetKey(["clinic", "clean", "patients"]) in parents
    assert dg.AssetKey(["clinic", "extract", "visits__visit_log"]) in parents


def test_dagster_validates_the_workspace(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_invalid_module_is_visible_next_to_valid_ones(tmp_path):
    good = {
        "@context": CONTEXT,
        "name": "shop",
        "tables": [{"name": "items", "columns": [{"name": "id", "dataType": "integer"}]}],
        "collection": [
            {"table": "items", "source": "csv", "extract": {"type": "file", "path": "i.csv"}}
        ],
    }
    write_module(tmp_path / "shop", good)
    bad = dict(good, name="broken", tables=[{"name": "items", "columns": []}])
    write_module(tmp_path / "broken", bad)
    defs, found = build_definitions(tmp_path)
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    assert dg.AssetKey(["shop", "clean", "items"]) in keys
    placeholder = graph.get(dg.AssetKey(["broken", "invalid_metadata"]))
    assert "tables[0].columns" in placeholder.description


def test_a_new_module_folder_appears_without_python(tmp_path):
    from etl_assets.cli import main

    assert main(["new", "orders", "--dir", str(tmp_path)]) == 0
    defs, found = build_definitions(tmp_path)
    assert [m.name for m in found.modules] == ["orders"]
    assert (
        dg.AssetKey(["orders", "upload", "items"])
        in defs.resolve_asset_graph().get_all_asset_keys()
    )


def test_loading_the_code_location_imports_no_cloud_client():
    """dagster-aws (with boto3) and the Kubernetes client are not needed to start a process
    (`dmetl run`, each step process, the webserver): they are imported where S3 or a k8s
    executor is actually used."""
    code = (
        "import sys; import etl_assets.cli.runs, etl_assets.definitions;"
        " print(sorted(m for m in ('dagster_aws', 'boto3', 'kubernetes', 'dagster_k8s')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
