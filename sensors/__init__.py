"""Sensors: source changes and run-failure alerts."""

from sensors.run_failure import run_failure_alert
from sensors.source_changes import build_source_sensor

__all__ = ["build_source_sensor", "run_failure_alert"]
