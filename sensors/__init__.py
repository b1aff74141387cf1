"""Sensors: source changes, approved uploads, run-failure and publication alerts (retention runs
as scheduled jobs, schedules/retention.py)."""

from sensors.approvals import build_approval_sensor
from sensors.run_failure import build_run_failure_sensor
from sensors.source_changes import build_source_sensor
from sensors.version_published import build_publish_sensor

__all__ = [
    "build_approval_sensor",
    "build_publish_sensor",
    "build_run_failure_sensor",
    "build_source_sensor",
]
