"""deploy/helm/values.yaml against what Dagster's Helm chart expects: its values schema, and the
instance configuration the chart renders from them, validated by Dagster itself."""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest
import yaml

from etl_assets._dagster_private import validate_instance_config
from etl_assets.execution import MODULE_TAG
from tests.conftest import ROOT
from tests.deploy_support import (
    DEPLOY,
    chart_instance_sections,
    helm_values,
    load_yaml,
    user_deployment,
)

SCHEMA = json.loads((ROOT / "tests" / "data" / "dagster-chart-values.schema.json").read_text())
K8S_SCHEMAS = "https://kubernetesjsonschema.dev/"
LITERAL_SECRET = re.compile(r"(?i)(password|secret|token|private_key|api_key)")


def _relax(node: object, strict: bool) -> object:
    """The schema as `helm install` applies it to our file, which Helm merges over the chart's
    defaults first: `required` holds only inside list items (lists replace the defaults, maps
    merge with them). References to Kubernetes object schemas (by URL) are dropped: offline they
    check nothing here, and dagster-k8s's builders check those objects
    (test_deploy_manifests.py)."""
    if isinstance(node, list):
        return [_relax(n, strict) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "required" and not strict:
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith(K8S_SCHEMAS):
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith("#/definitions/"):
            out[key] = value if strict else value + "__merged"
            continue
        out[key] = _relax(value, strict or key == "items")
    return out


def merged_values_schema() -> dict:
    schema = _relax(SCHEMA, strict=False)
    for name, definition in SCHEMA["definitions"].items():
        schema["definitions"][name] = _relax(definition, strict=True)
        schema["definitions"][name + "__merged"] = _relax(definition, strict=False)
    return schema


def errors(values: dict) -> list[str]:
    found = jsonschema.Draft7Validator(merged_values_schema()).iter_errors(values)
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in found)


def test_values_match_the_chart_schema():
    values = helm_values()
    assert set(values) <= set(SCHEMA["properties"]), (
        "a top-level key the trimmed chart schema does not describe: copy its definition into"
        " tests/data/dagster-chart-values.schema.json"
    )
    assert errors(values) == []


def test_the_schema_check_catches_mistakes():
    """The check is not vacuous: a misspelt key, a wrong type, a missing list-item field."""
    values = helm_values()
    typo = copy.deepcopy(values)
    typo["runLauncher"]["config"]["k8sRunLauncher"]["envSecret"] = [{"name": "x"}]
    assert any("envSecret" in e for e in errors(typo))
    wrong = copy.deepcopy(values)
    wrong["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"][
        "tagConcurrencyLimits"
    ][0]["limit"] = "two"
    assert any("limit" in e for e in errors(wrong))
    nameless = copy.deepcopy(values)
    del user_deployment(nameless)["port"]
    assert any("'port' is a required property" in e for e in errors(nameless))


def test_code_location_deployment():
    values = helm_values()
    deployment = user_deployment(values)
    workspace = load_yaml(ROOT / "workspace.yaml")["load_from"][0]["python_module"]
    assert deployment["dagsterApiGrpcArgs"] == [
        "-m",
        workspace["module_name"],
        "-a",
        workspace["attribute"],
    ]
    assert f"EXPOSE {deployment['port']}" in (DEPLOY / "Dockerfile").read_text()
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert deployment["image"]["tag"] not in ("latest", "", None)
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["DM_EXECUTOR"] == "k8s" and env["DM_DEPLOYMENT"] == "prod"
    # step storage is a shared volume mounted where DM_STORAGE_ROOT points
    mounts = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    claims = {v["name"] for v in deployment["volumes"] if "persistentVolumeClaim" in v}
    assert mounts["step-storage"] == env["DM_STORAGE_ROOT"] and "step-storage" in claims
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True


def test_no_secret_values():
    """Secrets appear by name only: Secret references, never literal values."""
    values = helm_values()
    assert values["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"

    def walk(node, path=""):
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, str) and LITERAL_SECRET.search(k):
                    if not k.endswith("SecretName"):
                        pytest.fail(f"{path}.{k} holds a literal value")
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, dict) and "name" in v and "value" in v:
                    assert not LITERAL_SECRET.search(v["name"]), f"{path}[{i}] {v['name']}"
                walk(v, f"{path}[{i}]")

    walk(values)
    for section in (user_deployment(values), values["runLauncher"]["config"]["k8sRunLauncher"]):
        assert all(set(s) == {"name"} for s in section["envSecrets"])


def test_chart_renders_a_valid_instance(tmp_path):
    """The run queue, launcher, monitoring and retries the chart puts into dagster.yaml pass
    Dagster's own validation (storage aside: the chart's PostgreSQL)."""
    sections = chart_instance_sections(helm_values())
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(sections))
    config = validate_instance_config(str(tmp_path))
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["run_monitoring"]["enabled"] is True
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert {"key": MODULE_TAG, "limit": 2, "value": {"applyLimitPerUniqueValue": True}} in limits
