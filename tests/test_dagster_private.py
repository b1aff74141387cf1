"""Contract of the one private Dagster API we use (etl_assets/_dagster_private.py), and of the
public one that replaced the private cron validator."""

import pytest
from pydantic import ValidationError

from etl_assets._dagster_private import validate_instance_config
from etl_assets.metadata import Schedule
from tests.conftest import ROOT


def test_cron_validation_uses_dagsters_public_schedule_definition():
    for ok in ("@daily", "@hourly", "0 */2 * * *", "0 0 * * MON", "0 0 1 * *"):
        assert Schedule.model_validate({"cron": ok}).cron == ok
    for bad in ("every day", "61 * * * *", "", "* * *", "0 0 31 2 *"):
        with pytest.raises(ValidationError, match="not a cron expression"):
            Schedule.model_validate({"cron": bad})
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        Schedule.model_validate({"cron": "@daily", "timezone": "Mars/Olympus"})


def test_instance_configs_validate(monkeypatch):
    assert validate_instance_config(str(ROOT))["run_monitoring"]["enabled"] is True
    for name in ("DAGSTER_PG_URL", "DAGSTER_K8S_NAMESPACE", "DM_IMAGE"):
        monkeypatch.setenv(name, "x")
    prod = validate_instance_config(str(ROOT / "deploy"), "dagster.prod.yaml")
    assert prod["run_launcher"]["class"] == "K8sRunLauncher"
