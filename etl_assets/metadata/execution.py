"""How a module's runs execute: the executor of its jobs, how many steps run at once, and the
CPU and memory of each stage's process or Kubernetes pod.

What the settings do is in `etl_assets.execution`; this is only their strict model.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from etl_assets.metadata.base import _Model

EXECUTORS = ("auto", "in_process", "multiprocess", "k8s")
Executor = Literal["auto", "in_process", "multiprocess", "k8s"]

# Kubernetes quantities, restricted to the spellings a reader recognises: cores or millicores,
# and bytes with a binary or decimal suffix
CPU_PATTERN = r"^([1-9][0-9]*m|[0-9]+(\.[0-9]{1,3})?)$"
MEMORY_PATTERN = r"^[1-9][0-9]*(Ki|Mi|Gi|Ti|k|M|G|T)?$"


def _quantity(pattern: str, what: str, examples: str):
    def check(value: str) -> str:
        if not re.match(pattern, value):
            raise ValueError(f"not a {what}: {value!r}; expected {examples}")
        return value

    return AfterValidator(check)


# the pattern is in the JSON Schema; the validator gives the error a reader can act on
Cpu = Annotated[
    str,
    Field(
        description="cores (`1`, `0.5`) or millicores (`250m`)",
        json_schema_extra={"pattern": CPU_PATTERN},
    ),
    _quantity(CPU_PATTERN, "CPU quantity", "cores such as 1 or 0.5, or millicores such as 250m"),
]
Memory = Annotated[
    str,
    Field(
        description="bytes with a suffix: `512Mi`, `2Gi`, `1G`",
        json_schema_extra={"pattern": MEMORY_PATTERN},
    ),
    _quantity(MEMORY_PATTERN, "memory quantity", "bytes with a suffix such as 512Mi, 2Gi or 1G"),
]


class Resources(_Model):
    """CPU and memory of one stage's steps: the request (and, for memory, the limit) of its pod."""

    cpu: Cpu | None = None
    memory: Memory | None = None

    @model_validator(mode="after")
    def _something(self) -> Resources:
        if self.cpu is None and self.memory is None:
            raise ValueError("resources need cpu, memory or both")
        if self.cpu is not None and float(self.cpu.removesuffix("m") or 0) == 0:
            raise ValueError("cpu must be more than 0")
        return self


class StageResources(_Model):
    """Resources per stage; `default` gives each stage the `cpu` or `memory` it does not give
    itself, `run` is the run's own process (the run pod in Kubernetes)."""

    default: Resources | None = None
    run: Resources | None = None
    extract: Resources | None = None
    clean: Resources | None = None
    anonymize: Resources | None = None
    outbox: Resources | None = None
    upload: Resources | None = None

    def for_stage(self, stage: str) -> Resources | None:
        """The resources of `stage`'s steps: its own `cpu` and `memory`, each else `default`'s."""
        own, default = getattr(self, stage), self.default
        if own is None or default is None:
            return own if own is not None else default
        return Resources(cpu=own.cpu or default.cpu, memory=own.memory or default.memory)


class Execution(_Model):
    """The executor of the module's jobs and the resources of its steps."""

    executor: Executor | None = Field(
        default=None,
        description="auto | in_process | multiprocess | k8s; default: the deployment's"
        " (DM_EXECUTOR, default auto: in_process unless a source is sharded or partitioned or"
        " maxConcurrent is given)",
    )
    maxConcurrent: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="steps running at once per run (processes or pods); default 4",
    )
    resources: StageResources = Field(default_factory=StageResources)

    @model_validator(mode="after")
    def _concurrency_needs_parallel_executor(self) -> Execution:
        if self.executor == "in_process" and self.maxConcurrent is not None:
            raise ValueError(
                "maxConcurrent has no effect with executor in_process (one step at a time);"
                " remove it or choose multiprocess or k8s"
            )
        return self
