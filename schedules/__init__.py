"""Schedules: those built from module metadata, and the retention jobs' schedules."""

from schedules.module_schedules import build_schedule
from schedules.retention import build_retention_jobs

__all__ = ["build_retention_jobs", "build_schedule"]
