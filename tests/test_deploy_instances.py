"""Every Dagster instance configuration we ship loads as a DagsterInstance: the local one, the
Compose one and the production one (on the test PostgreSQL), and the one the Helm chart renders;
and they all queue runs under the same limits."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_k8s import K8sRunLauncher

from etl_assets.run_worker import ProcessGroupRunLauncher
from tests.conftest import ROOT
from tests.deploy_support import (
    DEPLOY,
    chart_instance_sections,
    fake_kubeconfig,
    helm_values,
    load_yaml,
    offline,
    pg_url_of,
)

pytestmark = pytest.mark.integration


def load(folder: Path, config: dict) -> dg.DagsterInstance:
    """`config` as `folder`/dagster.yaml, loaded the way every Dagster process loads it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text(yaml.safe_dump(config))
    instance = dg.DagsterInstance.from_config(str(folder))
    # touch every configured part: storage (and its schema), coordinator, launcher
    assert instance.get_runs(limit=1) == []
    assert instance.run_coordinator is not None and instance.run_launcher is not None
    return instance


def queue_limits(config: dict) -> list[dict]:
    return config["run_coordinator"]["config"]["tag_concurrency_limits"]


def test_local_instance(tmp_path):
    config = load_yaml(ROOT / "dagster.yaml")
    with load(tmp_path / "home", config) as instance:
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert instance.run_monitoring_enabled
        # dead runs (a killed `dmetl run` too) are found within the documented interval
        assert isinstance(instance.run_launcher, ProcessGroupRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_poll_interval_seconds == 10


def test_compose_instance(tmp_path, monkeypatch, pg_url):
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url_of(pg_url))
    config = load_yaml(DEPLOY / "dagster.compose.yaml")
    with load(tmp_path / "home", config) as instance:
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert isinstance(instance.run_launcher, dg.DefaultRunLauncher)
        assert instance.run_monitoring_enabled and instance.run_retries_enabled


def test_production_instance(tmp_path, monkeypatch, pg_url):
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url_of(pg_url))
    monkeypatch.setenv("DAGSTER_K8S_NAMESPACE", "dmetl")
    monkeypatch.setenv("DM_IMAGE", "registry.example.org/datamodule-etl:0.1.0")
    config = load_yaml(DEPLOY / "dagster.prod.yaml")
    config["run_launcher"] = offline(config["run_launcher"], fake_kubeconfig(tmp_path / "kc"))
    with load(tmp_path / "home", config) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.job_namespace == "dmetl"
        assert launcher.env_secrets == ["datamodule-etl-secrets"]
        assert instance.run_monitoring_enabled


def test_instance_the_chart_renders(tmp_path):
    """The chart's run queue, launcher, monitoring and retries (on SQLite storage here: the
    chart's own storage is its PostgreSQL)."""
    sections = chart_instance_sections(helm_values())
    kubeconfig = fake_kubeconfig(tmp_path / "kc")
    config = {**sections, "run_launcher": offline(sections["run_launcher"], kubeconfig)}
    with load(tmp_path / "home", config) as instance:
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert isinstance(instance.run_launcher, K8sRunLauncher)
        assert instance.run_launcher.instance_config_map == "dmetl-dagster-instance"
        assert instance.run_monitoring_enabled and instance.run_retries_enabled


def test_one_queue_policy_everywhere():
    """Per version, per module and per connection: the same limits on one node and in the
    cluster, with or without the chart."""
    helm = chart_instance_sections(helm_values())
    compose = load_yaml(DEPLOY / "dagster.compose.yaml")
    prod = load_yaml(DEPLOY / "dagster.prod.yaml")
    assert queue_limits(helm) == queue_limits(compose) == queue_limits(prod)
    keys = [limit["key"] for limit in queue_limits(prod)]
    assert "dm/module" in keys and any(k.startswith("dm-connection/") for k in keys)
