"""The script collector: run a program that prints records as JSON on stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from etl_assets.errors import ExtractionError
from etl_assets.extract.records import parse_json_records, records_to_frame
from etl_assets.metadata import CollectionEntry, ScriptCollector

STDERR_KEPT = 200_000  # characters of a failing script's stderr kept (restricted zone)


def script_command(script: ScriptCollector, folder: Path) -> list[str]:
    path = (folder / script.path).resolve()
    if not path.is_file():
        raise ExtractionError(f"script not found: {path}")
    if path.suffix == ".py":
        return [sys.executable, str(path), *script.args]
    if not os.access(path, os.X_OK):
        raise ExtractionError(f"{path}: not executable (chmod +x, or use a .py file)")
    return [str(path), *script.args]


def run_script(
    script: ScriptCollector, folder: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run the script in its module folder with exactly `env` as its environment; fail loudly."""
    cmd = script_command(script, folder)
    try:
        proc = subprocess.run(
            cmd,
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=script.timeoutSeconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ExtractionError(
            f"script {script.path} did not finish within {script.timeoutSeconds:g} s",
            retryable=True,
        ) from None
    if proc.returncode != 0:
        stderr = proc.stderr or ""
        lines = len(stderr.splitlines())
        raise ExtractionError(
            f"script {script.path} exited with code {proc.returncode} and wrote {lines} lines"
            " to stderr",
            retryable=True,
            restricted_detail=stderr[-STDERR_KEPT:],
        )
    return proc


def extract_script(script: ScriptCollector, folder: Path, env: dict[str, str]) -> pd.DataFrame:
    proc = run_script(script, folder, env)
    records = parse_json_records(proc.stdout, f"output of script {script.path}")
    return records_to_frame(records)


def extract_script_entry(entry: CollectionEntry, folder: Path, context: Any) -> pd.DataFrame:
    """The script collector of a collection entry, with the step's environment."""
    env = context.script_environment(
        entry.extract, {"DM_TABLE": entry.table, "DM_SOURCE": entry.source}
    )
    return extract_script(entry.extract, folder, env)
