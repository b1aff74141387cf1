"""How a variable's text becomes a setting, and the error that names the variable to set."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg


class DeploymentError(RuntimeError):
    """The environment does not describe a usable deployment (names the variable to set)."""


def env_var_or_none(name: str, present: bool) -> dg.EnvVar | None:
    """`name` as an `EnvVar` (read where the run executes) when it is set, else None."""
    return dg.EnvVar(name) if present else None


def flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = (env.get(name) or "").strip().lower()
    if value == "":
        return default
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise DeploymentError(f"{name}={value!r}: expected true or false")


def whole_number(env: Mapping[str, str], name: str, default: int, unit: str = "seconds") -> int:
    """A positive whole number (`unit`: what it counts, for the error)."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DeploymentError(f"{name}={raw!r}: expected a whole number ({unit})") from None
    if value <= 0:
        raise DeploymentError(f"{name}={raw!r}: expected a positive whole number ({unit})")
    return value


def row_count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").replace("_", "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1000:
        raise DeploymentError(f"{name}={env.get(name)!r}: expected a whole number of rows >= 1000")
    return int(raw)


def required(env: Mapping[str, str], name: str, why: str) -> str:
    value = env.get(name)
    if not value:
        raise DeploymentError(f"{why} needs {name}")
    return value
