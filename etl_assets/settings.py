"""Where things live by default: one small environment helper, as in dagster-open-platform."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def dagster_home() -> Path:
    """`DAGSTER_HOME`, else `.dagster_home/` in the project (created on first use)."""
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    return home


def outbox_root() -> str:
    return os.environ.get("DM_OUTBOX_ROOT") or str(dagster_home() / "outbox")


def storage_root() -> str:
    return os.environ.get("DM_STORAGE_ROOT") or str(dagster_home() / "storage")


def deployment() -> str:
    """`local` (embedded defaults) or `prod` (every part from the environment)."""
    return os.environ.get("DM_DEPLOYMENT", "local")
