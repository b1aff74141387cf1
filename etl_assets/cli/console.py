"""What `dmetl run` prints while a run executes and when it fails: the steps' own log lines, a
line per retry, and for a failure the step, its cause in one line and where the full log is —
instead of Dagster's event lines and stack traces on stderr (those stay in the run's event log
and compute logs)."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import dagster as dg

from etl_assets.failures import error_cause

UI_URL = "http://127.0.0.1:3000"  # `make ui` / `dmetl serve` on this machine


@dataclass(frozen=True)
class StepFailure:
    step: str
    cause: str


class _StepLines(logging.Handler):
    """A step's `context.log` lines as `  <step>: <message>`; a retry as one line (Dagster
    logs events at DEBUG, so the logger takes everything and this handler chooses)."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        step = meta.get("step_key") or "run"
        if event is None:
            # a step's own lines; Dagster's system errors ("Dependencies for step … failed")
            # repeat the failure the summary reports once
            if not logging.INFO <= record.levelno < logging.ERROR:
                return
            text = str(meta.get("orig_message") or record.getMessage()).strip()
        elif event.event_type_value == "STEP_UP_FOR_RETRY":
            error = getattr(event.event_specific_data, "error", None)
            text = f"failed, retrying: {error_cause(error)}"
        else:
            return
        print(f"  {step}: {text}", file=sys.stderr)


@dg.logger(
    config_schema={"log_level": dg.Field(str, default_value="DEBUG")},
    description="dmetl's console: step log lines and retries, no Dagster event noise",
)
def dmetl_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.Logger("dmetl", level=init_context.logger_config["log_level"])
    log.addHandler(_StepLines())
    return log


def compute_logs_dir(instance: dg.DagsterInstance, run_id: str) -> Path | None:
    """Where the run's captured stdout/stderr are (the local compute log manager's layout)."""
    path = Path(instance.storage_directory()) / run_id / "compute_logs"
    return path if path.is_dir() else None


def print_failures(failures: list[StepFailure], run_id: str, instance: dg.DagsterInstance) -> None:
    for failure in failures:
        print(f"  failed step: {failure.step}", file=sys.stderr)
        print(f"  cause:       {failure.cause}", file=sys.stderr)
    print(f"  full log:    run {run_id} in the Dagster UI (`make ui`):", file=sys.stderr)
    print(f"               {UI_URL}/runs/{run_id}", file=sys.stderr)
    logs = compute_logs_dir(instance, run_id)
    if logs is not None:
        print(f"  step output: {logs}", file=sys.stderr)


class MaskedStream:
    """A text stream that masks secrets in everything written through it."""

    def __init__(self, stream: TextIO, mask: Callable[[str], str]):
        self._stream = stream
        self._mask = mask

    def write(self, text: str) -> int:
        self._stream.write(self._mask(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, encoding, isatty, ...
        return getattr(self._stream, name)


@contextlib.contextmanager
def masked_output(mask: Callable[[str], str]) -> Iterator[None]:
    """Everything the command prints (and Dagster prints for it) with the run's secrets masked."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = MaskedStream(out, mask), MaskedStream(err, mask)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
