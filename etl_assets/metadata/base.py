"""What every section of the metadata model shares: the strict base class and the name types.

Validation is strict: unknown keys are errors (a typo never silently does nothing), and no value
is coerced from another JSON type (`"priority": "2"`, `"nullable": "no"` and
`"retentionDays": true` are errors, not 2, True and 1).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"

Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="lower-case identifier: a letter, then letters, digits or underscores",
    ),
]

DataType = Literal["string", "integer", "number", "boolean", "date", "datetime"]


class _Model(BaseModel):
    """Base: unknown keys are errors and values are never coerced across JSON types."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, strict=True)


def literal_fits(value: object, data_type: str) -> bool:
    """Whether a literal from the metadata is a valid value of a column of `data_type`."""
    if data_type == "string":
        return isinstance(value, str)
    if data_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if data_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if data_type == "boolean":
        return isinstance(value, bool)
    if data_type in ("date", "datetime"):
        if isinstance(value, dt.date):
            return True
        if not isinstance(value, str):
            return False
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False
