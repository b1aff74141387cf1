"""What a failed step says, in one line: the root cause behind Dagster's wrappers.

A step that spent its retries reports "Exceeded max_retries of N" with the real error as its
cause; a `dg.Failure` keeps its description in the event's user failure data; a bare exception
sits at the end of the error's cause chain. `root_cause` finds the message a user should read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster_shared.error import SerializableErrorInfo

WRAPPERS = ("Exceeded max_retries of", "RetryRequested", "Error occurred while executing")


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


def error_chain(error: SerializableErrorInfo | None) -> list[SerializableErrorInfo]:
    """The error and its causes (or, without a cause, the exception it was raised during)."""
    chain: list[SerializableErrorInfo] = []
    while error is not None and len(chain) < 20:
        chain.append(error)
        error = error.cause or error.context
    return chain


def root_cause(event: dg.DagsterEvent) -> str:
    """One line: the failing step's own message, not a retry or Dagster wrapper."""
    data = event.step_failure_data
    user = data.user_failure_data if data else None
    if user is not None and user.description:
        return _first_line(user.description)
    return error_cause(data.error if data else None)


def error_cause(error: SerializableErrorInfo | None) -> str:
    """One line from an error's cause chain: the innermost message that is not a wrapper."""
    chain = error_chain(error)
    for error in reversed(chain):  # innermost first: the exception the step raised
        line = _first_line(error.message)
        if line and not line.startswith(WRAPPERS):
            name = (error.cls_name or "Failure").rsplit(".", 1)[-1]
            # an exception's message starts with its qualified class name: keep the short one
            head, sep, rest = line.partition(": ")
            if sep and head.rsplit(".", 1)[-1] == name:
                line = rest
            return line if name == "Failure" else f"{name}: {line}"
    return _first_line(chain[0].message) if chain else "the step failed"
