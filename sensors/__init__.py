"""Sensors: source changes, approved uploads and run-failure alerts (retention runs as scheduled
jobs, schedules/retention.py)."""

from sensors.approvals import build_approval_sensor
from sensors.run_failure import run_failure_alert
from sensors.source_changes import build_source_sensor

__all__ = [
    "build_approval_sensor",
    "build_source_sensor",
    "run_failure_alert",
]
