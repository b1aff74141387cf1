"""What a process sets up for itself: `DAGSTER_HOME`, Arrow's memory pool, who runs it."""

from __future__ import annotations

import os
import pwd

import pyarrow as pa

from resources.deployment.environment import Deployment


def local_user_name() -> str:
    """Who runs this process (local sign-in mode), from the account database, not $USER."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid{os.getuid()}"


def configure_arrow() -> None:
    """Arrow allocates through jemalloc unless ARROW_DEFAULT_MEMORY_POOL says otherwise.

    The default (mimalloc) keeps memory freed by the Parquet reader and short-lived buffers;
    bench/rules.py at 10M rows peaks at 2.74x the data's Arrow size with it, 2.49x with jemalloc.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow build without jemalloc
        pass


def set_dagster_home(deployment: Deployment) -> None:
    """Make the deployment's `DAGSTER_HOME` the process's (the CLI's instance is that one)."""
    deployment.dagster_home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(deployment.dagster_home)
