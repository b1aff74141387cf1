"""The `execution` metadata and the one place that turns it into executors and tags: strict
validation with errors naming the file and JSON path, the executor each deployment gets, the run
queue's tags on each job, and the run pod's size."""

from __future__ import annotations

import json
import re

import pytest

from etl_assets import execution as ex
from etl_assets.definitions import build_definitions, load_catalog
from etl_assets.metadata import Execution
from etl_assets.metadata.execution import EXECUTORS
from etl_assets.metadata.loader import load_module
from resources import deployment as deployment_module
from resources.deployment import Deployment, DeploymentError
from tests.conftest import ROOT
from tests.deploy_support import write_shop


def error(tmp_path, execution: dict) -> str:
    mods = tmp_path / "mods"
    write_shop(mods, execution)
    catalog = load_catalog(mods)
    [err] = catalog.errors
    assert not err.internal, str(err)
    return str(err)


@pytest.mark.parametrize(
    ("execution", "path", "says"),
    [
        ({"executor": "celery"}, "execution.executor", "in_process"),
        ({"maxConcurrent": 0}, "execution.maxConcurrent", "greater than or equal to 1"),
        ({"maxConcurrent": "4"}, "execution.maxConcurrent", "integer"),
        ({"executor": "in_process", "maxConcurrent": 2}, "execution", "no effect"),
        (
            {"resources": {"clean": {"memory": "2 GB"}}},
            "execution.resources.clean.memory",
            "such as 512Mi",
        ),
        ({"resources": {"clean": {"cpu": "0"}}}, "execution.resources.clean", "more than 0"),
        (
            {"resources": {"transform": {"cpu": "1"}}},
            "execution.resources.transform",
            "unknown key",
        ),
        ({"resources": {"default": {}}}, "execution.resources.default", "cpu, memory or both"),
    ],
)
def test_invalid_execution_is_the_modules_error(tmp_path, execution, path, says):
    message = error(tmp_path, execution)
    assert "shop/module.jsonld" in message and path in message, message
    assert says in message or says.lower() in message.lower(), message


def test_executor_choice():
    def chosen(executor: str | None, deployment: str) -> str:
        return ex.executor_name(Execution(executor=executor), deployment)

    # the deployment's default unless the module names one
    assert chosen(None, "multiprocess") == "multiprocess"
    assert chosen(None, "k8s") == "k8s"
    assert chosen("in_process", "k8s") == "in_process"
    assert chosen("multiprocess", "k8s") == "multiprocess"
    # k8s needs Kubernetes: elsewhere the same per-step parallelism in processes
    assert chosen("k8s", "multiprocess") == "multiprocess"
    assert chosen("k8s", "in_process") == "multiprocess"
    # auto: one process unless some steps can run side by side or maxConcurrent is asked for
    assert chosen(None, "auto") == "in_process"
    assert chosen("auto", "k8s") == "in_process"
    assert ex.executor_name(Execution(), "auto", parallel=True) == "multiprocess"
    assert ex.executor_name(Execution(maxConcurrent=3), "auto") == "multiprocess"
    assert ex.executor_config(Execution(maxConcurrent=7)) == {"max_concurrent": 7}
    assert ex.executor_config(Execution()) == {"max_concurrent": ex.DEFAULT_MAX_CONCURRENT}


def test_deployment_default_executor():
    assert EXECUTORS == deployment_module.EXECUTORS
    env = {"DM_DEPLOYMENT": "local"}
    assert Deployment.from_environ(env).executor == "auto"
    assert Deployment.from_environ({**env, "DM_EXECUTOR": "k8s"}).executor == "k8s"
    with pytest.raises(DeploymentError, match="DM_EXECUTOR='pods'"):
        Deployment.from_environ({**env, "DM_EXECUTOR": "pods"})


def test_jobs_carry_the_queue_tags(tmp_path):
    mods = tmp_path / "mods"
    write_shop(mods, {"executor": "multiprocess", "maxConcurrent": 2})
    deployment = Deployment("local", tmp_path, mods, False, str(tmp_path), str(tmp_path))
    defs, catalog = build_definitions(mods, deployment)
    assert not catalog.errors
    tags = {name: defs.resolve_job_def(name).run_tags for name in ("shop_prepare_job",
            "shop_upload_job", "shop_job")}  # fmt: skip
    assert {t[ex.MODULE_TAG] for t in tags.values()} == {"shop"}

    def connections(job: str) -> dict[str, str]:
        return {k: v for k, v in tags[job].items() if k.startswith(ex.CONNECTION_TAG_PREFIX)}

    shards = {"dm-connection/shop_eu": "postgres", "dm-connection/shop_us": "postgres"}
    assert connections("shop_prepare_job") == shards
    assert connections("shop_upload_job") == {"dm-connection/warehouse": "postgres"}
    assert connections("shop_job") == {**shards, "dm-connection/warehouse": "postgres"}
    job = defs.resolve_job_def("shop_job")
    assert job.executor_def.name == "multiprocess"
    # step processes fork from a server that has the code location imported
    start = ex.multiprocess_config(Execution(maxConcurrent=2))
    assert start == {
        "max_concurrent": 2,
        "start_method": {"forkserver": {"preload_modules": ["etl_assets.definitions"]}},
    }


def test_auto_executor_follows_the_modules_shape(tmp_path):
    """The deployment's default `auto`: the sharded shop runs a process per step, a module
    with one source per table runs in process."""
    mods = tmp_path / "mods"
    write_shop(mods, {})
    deployment = Deployment("local", tmp_path, mods, False, str(tmp_path), str(tmp_path))
    assert deployment.executor == "auto"
    defs, catalog = build_definitions(mods, deployment)
    assert not catalog.errors
    assert defs.resolve_job_def("shop_job").executor_def.name == "multiprocess"
    examples, _ = build_definitions(ROOT / "datamodules", deployment)
    for name in ("clinic_job", "staff_survey_job"):
        assert examples.resolve_job_def(name).executor_def.name == "in_process"


def test_run_pod_size():
    def run(execution: dict, executor: str) -> dict:
        return ex.container_resources(ex.run_resources(Execution(**execution), executor))

    stages = {"default": {"cpu": "250m", "memory": "512Mi"}, "clean": {"memory": "3Gi"}}
    # in process: the largest stage
    assert run({"resources": stages}, "in_process") == {
        "requests": {"cpu": "250m", "memory": "3072Mi"},
        "limits": {"memory": "3072Mi"},
    }
    # multiprocess: the largest stage for each of maxConcurrent processes
    assert run({"resources": stages, "maxConcurrent": 2}, "multiprocess")["limits"] == {
        "memory": "6144Mi"
    }
    # k8s: the run pod coordinates; the deployment's default unless `run` is given
    assert run({"resources": stages}, "k8s") == {}
    given = {"resources": {**stages, "run": {"memory": "700M"}}}
    assert run(given, "k8s") == {"requests": {"memory": "700M"}, "limits": {"memory": "700M"}}
    assert run({}, "in_process") == {}


def test_documented_example(tmp_path):
    """The example in docs/datamodule-format.md loads and sizes the anonymize pods as it says."""
    text = (ROOT / "docs" / "datamodule-format.md").read_text()
    block = re.search(r'```json\n("execution": \{.*?\n\})\n```', text, re.S).group(1)
    example = json.loads("{" + block + "}")["execution"]
    write_shop(tmp_path / "mods", example)
    loaded = load_module(tmp_path / "mods" / "shop")
    config = ex.step_tags(loaded.model, "anonymize")[ex.K8S_CONFIG_TAG]
    assert config["container_config"]["resources"] == {
        "requests": {"cpu": "500m", "memory": "4Gi"},
        "limits": {"memory": "4Gi"},
    }
    labels = config["pod_template_spec_metadata"]["labels"]
    assert labels == {"dm/module": "shop", "dm/stage": "anonymize"}
