"""The Kubernetes Jobs of a module's run and of its steps, built offline with dagster-k8s's own
builders from our Helm values and the module's metadata: image, secrets by name only, resources
from the metadata, labels and TTL."""

from __future__ import annotations

import json
import re

import dagster as dg
import pytest
from dagster_k8s import K8sRunLauncher

from etl_assets.definitions import build_definitions
from etl_assets.execution import (
    CONNECTION_TAG_PREFIX,
    K8S_CONFIG_TAG,
    MODULE_TAG,
    STAGE_LABEL,
    executor_config,
)
from etl_assets.metadata import Execution
from resources.deployment import Deployment
from tests.deploy_support import (
    CANARY,
    chart_instance,
    code_location_context,
    helm_values,
    image_of,
    run_job_manifest,
    step_job_manifest,
    user_deployment,
    write_shop,
)

EXECUTION = {
    "executor": "k8s",
    "maxConcurrent": 3,
    "resources": {
        "default": {"cpu": "250m", "memory": "512Mi"},
        "clean": {"cpu": "1", "memory": "2Gi"},
    },
}
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|KEY|KEY_ID|CREDENTIALS?|_URL)$")
DAGSTER_STEP_ENV = {"DAGSTER_RUN_STEP_KEY"}  # the step's key, set by the k8s executor


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """The shop module's definitions in a cluster deployment, and an instance whose run launcher
    is the chart's K8sRunLauncher (pointed at a cluster that is never contacted)."""
    for var in ("SHOP_EU_URL", "SHOP_US_URL", "WAREHOUSE_URL", "DM_PSEUDONYM_KEY"):
        monkeypatch.setenv(var, f"postgresql://etl:{CANARY}@db/{var.lower()}")
    monkeypatch.setenv("DM_POSTGRES_URL", f"postgresql://etl:{CANARY}@db/dm")
    mods = tmp_path / "mods"
    write_shop(mods, EXECUTION)
    home = tmp_path / "home"
    deployment = Deployment(
        "prod", home, mods, True, "s3://outbox/x", "/data/storage", executor="k8s"
    )
    defs, catalog = build_definitions(mods, deployment)
    assert not catalog.errors, [str(e) for e in catalog.errors]
    values = helm_values()
    instance = chart_instance(tmp_path / "instance", values)
    yield defs, instance, values
    instance.dispose()


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str) -> dg.DagsterRun:
    job = defs.resolve_job_def(job_name)
    instance.add_dynamic_partitions("shop_versions", ["1.0.1"])
    return instance.create_run_for_job(job, tags={**job.run_tags, "dagster/partition": "1.0.1"})


def _container(manifest: dict) -> dict:
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    return container


def _assert_safe(manifest: dict, values: dict) -> None:
    """Secrets only by reference: the Secret names from the values, no value from the
    environment, no literal value for a variable whose name says it is secret."""
    text = json.dumps(manifest)
    assert CANARY not in text
    container = _container(manifest)
    secrets = {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e}
    assert {s["name"] for s in user_deployment(values)["envSecrets"]} <= secrets
    for env in container.get("env", []):
        if SECRET_NAME.search(env["name"]) and env["name"] not in DAGSTER_STEP_ENV:
            assert "value" not in env and "valueFrom" in env, env


def test_run_pod(cluster):
    defs, instance, values = cluster
    launcher = instance.run_launcher
    assert isinstance(launcher, K8sRunLauncher)
    run = _run(defs, instance, "shop_job")
    deployment = user_deployment(values)
    manifest = run_job_manifest(launcher, run, code_location_context(values), image_of(deployment))

    container = _container(manifest)
    assert container["image"] == "registry.example.org/datamodule-etl:0.1.0"
    _assert_safe(manifest, values)
    # the run pod only coordinates (k8s executor): the deployment's default resources
    assert container["resources"] == deployment["resources"]
    labels = manifest["metadata"]["labels"]
    assert labels[MODULE_TAG] == "shop" and labels["dagster/run-id"] == run.run_id
    assert manifest["spec"]["template"]["metadata"]["labels"][MODULE_TAG] == "shop"
    assert manifest["spec"]["ttlSecondsAfterFinished"] == 259200
    assert manifest["spec"]["backoffLimit"] == 0
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/data/storage"}
    assert container["securityContext"]["runAsNonRoot"] is True
    # the queue's tags are on the run itself
    assert run.tags[MODULE_TAG] == "shop"
    assert {k for k in run.tags if k.startswith(CONNECTION_TAG_PREFIX)} == {
        f"{CONNECTION_TAG_PREFIX}{n}" for n in ("shop_eu", "shop_us", "warehouse")
    }


def test_step_pods(cluster):
    defs, instance, values = cluster
    job = defs.resolve_job_def("shop_job")
    assert job.executor_def.name == "k8s"
    dg.validate_run_config(job, {})  # the executor's config is valid for k8s_job_executor
    run = _run(defs, instance, "shop_job")
    image = image_of(user_deployment(values))
    steps = {node.name: node.tags for node in job.graph.nodes}
    manifests = {
        key: step_job_manifest(
            instance.run_launcher,
            run,
            code_location_context(values),
            executor_config(Execution.model_validate(EXECUTION)),
            key,
            tags,
            image,
        )
        for key, tags in steps.items()
    }
    # each shard's extraction and each table's stage is its own Job
    extract = sorted(k for k in steps if "__extract__" in k)
    assert extract == [
        "shop__extract__orders__legacy",
        "shop__extract__orders__shops__shop_eu",
        "shop__extract__orders__shops__shop_us",
    ]
    assert len({m["metadata"]["name"] for m in manifests.values()}) == len(steps)

    for key, manifest in manifests.items():
        container = _container(manifest)
        stage = json.loads(steps[key][K8S_CONFIG_TAG])["pod_template_spec_metadata"]["labels"][
            STAGE_LABEL
        ]
        assert container["image"] == image
        _assert_safe(manifest, values)
        want = (
            {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}
            if stage == "clean"
            else {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}
        )
        assert container["resources"] == want, key
        pod_labels = manifest["spec"]["template"]["metadata"]["labels"]
        assert pod_labels[MODULE_TAG] == "shop" and pod_labels["dagster/op"] == key
        assert manifest["metadata"]["labels"][STAGE_LABEL] == stage
        assert manifest["spec"]["ttlSecondsAfterFinished"] == 259200
        assert {e["name"] for e in container["env"]} >= {"DAGSTER_RUN_STEP_KEY", "DM_EXECUTOR"}

    # a step carries the connections it talks to, nothing else
    assert f"{CONNECTION_TAG_PREFIX}shop_eu" in steps["shop__extract__orders__shops__shop_eu"]
    assert f"{CONNECTION_TAG_PREFIX}shop_us" not in steps["shop__extract__orders__shops__shop_eu"]
    assert f"{CONNECTION_TAG_PREFIX}warehouse" in steps["shop__upload"]
    assert not any(k.startswith(CONNECTION_TAG_PREFIX) for k in steps["shop__clean__orders"])


def test_in_process_module_sizes_its_run_pod(tmp_path, monkeypatch):
    """A module that runs in one process gets a run pod as large as its largest stage."""
    monkeypatch.setenv("DM_POSTGRES_URL", f"postgresql://etl:{CANARY}@db/dm")
    mods = tmp_path / "mods"
    execution = {**EXECUTION, "executor": "in_process"}
    execution.pop("maxConcurrent")
    write_shop(mods, execution)
    deployment = Deployment("prod", tmp_path, mods, True, "s3://o/x", "/s", executor="k8s")
    defs, _ = build_definitions(mods, deployment)
    job = defs.resolve_job_def("shop_job")
    assert job.executor_def.name == "in_process"
    config = json.loads(job.run_tags[K8S_CONFIG_TAG])
    assert config["container_config"]["resources"] == {
        "requests": {"cpu": "1000m", "memory": "2048Mi"},
        "limits": {"memory": "2048Mi"},
    }
    values = helm_values()
    with chart_instance(tmp_path / "instance", values) as instance:
        run = _run(defs, instance, "shop_job")
        manifest = run_job_manifest(
            instance.run_launcher, run, code_location_context(values), "img:1"
        )
    assert _container(manifest)["resources"]["limits"] == {"memory": "2048Mi"}
