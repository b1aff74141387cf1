"""What the deploy tests share: the deploy files, a module with shards, connections and per-stage
resources, what the Dagster Helm chart renders from our values, and dagster-k8s's own Job builders
called the way its run launcher and step handler call them.

The chart rendering follows the chart's templates (dagster-io/dagster, helm/dagster:
templates/configmap-instance.yaml, templates/helpers/instance/_run-launcher.tpl and
_run-coordinator.tpl; charts/dagster-user-deployments/templates/deployment-user.yaml and
helpers/_helpers.tpl, `dagsterUserDeployments.k8sContainerContext`) for the keys our values set.
The Job construction follows `K8sRunLauncher._launch_k8s_job_with_args` and
`K8sStepHandler.launch_step` of dagster-k8s 0.29: the same calls, with the code location's
container context (which the chart passes to `dagster api grpc`) given explicitly.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import kubernetes
import psycopg
import yaml
from dagster_k8s import DagsterK8sJobConfig, K8sRunLauncher, construct_dagster_k8s_job
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import get_job_name_from_run_id, get_k8s_job_name, get_user_defined_k8s_config

from tests.conftest import ROOT
from tests.helpers import CONTEXT, write_module

DEPLOY = ROOT / "deploy"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
RELEASE = "dmetl"
NAMESPACE = "dmetl"
FULLNAME = f"{RELEASE}-dagster"  # the chart's "dagster.fullname" for a release without "dagster"
LOCATION = "datamodule_etl"
# values that must never reach a manifest: the tests put them in the environment
CANARY = "canary-d0-not-leak"


def pg_url_of(conninfo: str) -> str:
    """A libpq conninfo (as the `pg_url` fixture gives it) as a postgresql:// URL, the form
    dagster-postgres's `postgres_url` takes."""
    parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    auth = parts.get("user", "postgres") + (
        f":{parts['password']}" if parts.get("password") else ""
    )
    host = f"{parts.get('host', '127.0.0.1')}:{parts.get('port', 5432)}"
    return f"postgresql+psycopg2://{auth}@{host}/{parts['dbname']}"


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def helm_values() -> dict:
    return load_yaml(HELM_VALUES)


def user_deployment(values: dict) -> dict:
    [deployment] = values["dagster-user-deployments"]["deployments"]
    return deployment


def image_of(deployment: dict) -> str:
    """The chart's "dagster.dagsterImage.name": repository:tag."""
    return f"{deployment['image']['repository']}:{deployment['image']['tag']}"


# --- the test module ----------------------------------------------------------------------------


def shop_module(execution: dict | None) -> dict:
    """One table from two shards of a PostgreSQL source and a CSV file, published through a named
    PostgreSQL connection: every step kind that talks to a connection."""
    doc = {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": "shop",
        "version": "1.0.0",
        "autoUpload": True,
        "connections": [
            {"name": "shop_eu", "type": "postgres", "urlEnv": "SHOP_EU_URL"},
            {"name": "shop_us", "type": "postgres", "urlEnv": "SHOP_US_URL"},
            {"name": "warehouse", "type": "postgres", "urlEnv": "WAREHOUSE_URL"},
        ],
        "tables": [
            {
                "name": "orders",
                "columns": [
                    {"name": "order_id", "dataType": "integer"},
                    {"name": "amount", "dataType": "number"},
                ],
            }
        ],
        "collection": [
            {
                "table": "orders",
                "source": "shops",
                "extract": {
                    "type": "postgres",
                    "shards": ["shop_eu", "shop_us"],
                    "query": "SELECT order_id, amount FROM orders",
                },
            },
            {
                "table": "orders",
                "source": "legacy",
                "extract": {"type": "file", "path": "data/orders.csv"},
            },
        ],
        "upload": {"sink": {"type": "postgres", "connection": "warehouse"}},
    }
    if execution is not None:
        doc["execution"] = execution
    return doc


def write_shop(modules_dir: Path, execution: dict | None) -> Path:
    return write_module(
        modules_dir / "shop",
        shop_module(execution),
        {"data/orders.csv": "order_id,amount\n1,9.5\n"},
    )


# --- what the chart renders ---------------------------------------------------------------------


def _names(refs: list[dict]) -> list[str]:
    return [r["name"] for r in refs if "name" in r]


def chart_run_launcher(values: dict) -> dict:
    """The `run_launcher` section of the chart's dagster.yaml (K8sRunLauncher)."""
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": FULLNAME,
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": f"{FULLNAME}-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
    }
    if k8s.get("kubeconfigFile"):
        config["kubeconfig_file"] = k8s["kubeconfigFile"]
    if k8s.get("envConfigMaps"):
        config["env_config_maps"] = _names(k8s["envConfigMaps"])
    if k8s.get("envSecrets"):
        config["env_secrets"] = _names(k8s["envSecrets"])
    for key, name in (
        ("envVars", "env_vars"),
        ("volumeMounts", "volume_mounts"),
        ("volumes", "volumes"),
        ("labels", "labels"),
        ("resources", "resources"),
        ("schedulerName", "scheduler_name"),
        ("securityContext", "security_context"),
    ):
        if k8s.get(key):
            config[name] = k8s[key]
    if k8s.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    run_k8s = k8s.get("runK8sConfig") or {}
    sections = {
        "containerConfig": "container_config",
        "podSpecConfig": "pod_spec_config",
        "podTemplateSpecMetadata": "pod_template_spec_metadata",
        "jobSpecConfig": "job_spec_config",
        "jobMetadata": "job_metadata",
    }
    if run_k8s:
        config["run_k8s_config"] = {sections[k]: v for k, v in run_k8s.items() if v}
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def chart_instance_sections(values: dict) -> dict:
    """The run coordinator, launcher, monitoring, retries and telemetry of the chart's
    dagster.yaml (storage is the chart's PostgreSQL and is left out)."""
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    coordinator: dict = {"max_concurrent_runs": queued.get("maxConcurrentRuns", -1)}
    if queued.get("tagConcurrencyLimits"):
        coordinator["tag_concurrency_limits"] = queued["tagConcurrencyLimits"]
    monitoring = daemon["runMonitoring"]
    sections = {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": coordinator,
        },
        "run_launcher": chart_run_launcher(values),
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }
    if daemon["runRetries"]["enabled"]:
        sections["run_retries"] = {
            "enabled": True,
            "max_retries": daemon["runRetries"]["maxRetries"],
        }
    return sections


def code_location_context(values: dict) -> dict:
    """The container context the chart gives the user deployment's `dagster api grpc`
    (DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT): what its launched runs and steps inherit."""
    d = user_deployment(values)
    k8s: dict = {
        "image_pull_policy": d["image"]["pullPolicy"],
        "env_config_maps": [
            f"{FULLNAME}-{d['name']}-user-env",
            *_names(d.get("envConfigMaps", [])),
        ],
        "namespace": NAMESPACE,
        "service_account_name": f"{FULLNAME}-user-deployments",
        "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
    }
    if d.get("envSecrets"):
        k8s["env_secrets"] = _names(d["envSecrets"])
    for key, name in (
        ("volumeMounts", "volume_mounts"),
        ("volumes", "volumes"),
        ("labels", "labels"),
        ("resources", "resources"),
        ("schedulerName", "scheduler_name"),
    ):
        if d.get(key):
            k8s[name] = d[key]
    if isinstance(d.get("env"), list):
        k8s["env"] = d["env"]
    return {"k8s": k8s}


# --- dagster-k8s, offline -----------------------------------------------------------------------


def fake_kubeconfig(path: Path) -> Path:
    """A kubeconfig for a cluster that is never contacted (building manifests needs none)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "offline", "user": {"token": "unused"}}],
                "contexts": [
                    {"name": "offline", "context": {"cluster": "offline", "user": "offline"}}
                ],
                "current-context": "offline",
            }
        )
    )
    return path


def offline(run_launcher: dict, kubeconfig: Path) -> dict:
    """A K8sRunLauncher section that loads `kubeconfig` instead of the in-cluster config."""
    config = {**run_launcher["config"], "load_incluster_config": False}
    return {**run_launcher, "config": {**config, "kubeconfig_file": str(kubeconfig)}}


def chart_instance(folder: Path, values: dict) -> dg.DagsterInstance:
    """A temporary instance whose run launcher is the chart's K8sRunLauncher, offline."""
    folder.mkdir(parents=True, exist_ok=True)
    launcher = offline(chart_run_launcher(values), fake_kubeconfig(folder / "kubeconfig"))
    return dg.DagsterInstance.local_temp(str(folder), overrides={"run_launcher": launcher})


def as_dict(job: kubernetes.client.V1Job) -> dict:
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


def _base_context(launcher: K8sRunLauncher, run: dg.DagsterRun, code: dict) -> K8sContainerContext:
    """`K8sContainerContext.create_for_run` for a run whose code origin carries `code`: the
    launcher's settings, then the code location's."""
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=False)
    return context.merge(K8sContainerContext.create_from_config(code))


def run_job_manifest(launcher: K8sRunLauncher, run: dg.DagsterRun, code: dict, image: str) -> dict:
    """The Kubernetes Job the launcher creates for `run`."""
    context = _base_context(launcher, run, code).merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(run.tags))
    )
    job_config: DagsterK8sJobConfig = context.get_k8s_job_config(image, launcher)
    name = get_job_name_from_run_id(run.run_id)
    job = construct_dagster_k8s_job(
        job_config=job_config,
        args=["dagster", "api", "execute_run", json.dumps({"run_id": run.run_id})],
        job_name=name,
        pod_name=name,
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={
            "dagster/job": run.job_name,
            "dagster/run-id": run.run_id,
            "dagster/code-location": LOCATION,
        },
        env_vars=[{"name": "DAGSTER_RUN_JOB_NAME", "value": run.job_name}],
    )
    return as_dict(job)


def step_job_manifest(
    launcher: K8sRunLauncher,
    run: dg.DagsterRun,
    code: dict,
    executor_config: dict,
    step_key: str,
    step_tags: dict[str, str],
    image: str,
) -> dict:
    """The Kubernetes Job the k8s_job_executor creates for one step of `run`."""
    executor_context = K8sContainerContext(
        **{
            k: executor_config.get(k)
            for k in ("env_config_maps", "env_secrets", "env_vars", "volume_mounts", "volumes")
        }
    )
    context = (
        _base_context(launcher, run, code)
        .merge(executor_context)
        .merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(step_tags)))
    )
    job_config = context.get_k8s_job_config(executor_config.get("job_image"), launcher)
    if not job_config.job_image:
        job_config = job_config.with_image(image)
    name = f"dagster-step-{get_k8s_job_name(run.run_id, step_key)}"
    job = construct_dagster_k8s_job(
        job_config=job_config,
        args=["dagster", "api", "execute_step", json.dumps({"step": step_key})],
        job_name=name,
        pod_name=name,
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={
            "dagster/job": run.job_name,
            "dagster/op": step_key,
            "dagster/run-id": run.run_id,
            "dagster/code-location": LOCATION,
        },
        env_vars=[
            {"name": "DAGSTER_RUN_JOB_NAME", "value": run.job_name},
            {"name": "DAGSTER_RUN_STEP_KEY", "value": step_key},
        ],
    )
    return as_dict(job)
