"""The only place we touch Dagster's private API; `tests/test_dagster_private.py` pins its contract."""

from __future__ import annotations


def is_valid_cron(expression: str) -> bool:
    """True when Dagster's scheduler accepts the cron string (including @daily and friends)."""
    from dagster._utils.schedules import is_valid_cron_string

    return bool(is_valid_cron_string(expression))


def validate_instance_config(folder: str, filename: str = "dagster.yaml") -> dict:
    """Dagster's own validation of an instance config file (storage, launcher, coordinator...)."""
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(folder, filename)
    return config
