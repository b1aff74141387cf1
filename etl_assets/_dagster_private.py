"""The only place we touch Dagster's private API; `tests/test_dagster_private.py` pins its contract.

Dagster has no public call that validates an instance config file without starting the instance
(its storage, launcher and coordinator); the deployment checks need exactly that.
"""

from __future__ import annotations

from dagster._core.instance.config import dagster_instance_config


def validate_instance_config(folder: str, filename: str = "dagster.yaml") -> dict:
    """Dagster's own validation of an instance config file (storage, launcher, coordinator...)."""
    config, _ = dagster_instance_config(folder, filename)
    return config
