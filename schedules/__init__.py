"""Schedules built from module metadata."""

from schedules.module_schedules import build_schedule

__all__ = ["build_schedule"]
