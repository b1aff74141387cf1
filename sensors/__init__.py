"""Sensors: source changes, approved uploads, outbox retention and run-failure alerts."""

from sensors.approvals import build_approval_sensor
from sensors.outbox_retention import build_retention_sensor
from sensors.run_failure import run_failure_alert
from sensors.source_changes import build_source_sensor

__all__ = [
    "build_approval_sensor",
    "build_retention_sensor",
    "build_source_sensor",
    "run_failure_alert",
]
