"""Contract of the one private Dagster API we use (etl_assets/_dagster_private.py)."""

from etl_assets._dagster_private import is_valid_cron


def test_cron_validation_contract():
    for ok in ("@daily", "@hourly", "0 */2 * * *", "0 0 * * MON", "0 0 1 * *"):
        assert is_valid_cron(ok), ok
    for bad in ("every day", "61 * * * *", "", "* * *"):
        assert not is_valid_cron(bad), bad


def test_instance_configs_validate(monkeypatch):
    from etl_assets._dagster_private import validate_instance_config
    from tests.conftest import ROOT

    assert validate_instance_config(str(ROOT))["run_monitoring"]["enabled"] is True
    for name in ("DAGSTER_PG_URL", "DAGSTER_K8S_NAMESPACE", "DM_IMAGE"):
        monkeypatch.setenv(name, "x")
    prod = validate_instance_config(str(ROOT / "deploy"), "dagster.prod.yaml")
    assert prod["run_launcher"]["class"] == "K8sRunLauncher"
