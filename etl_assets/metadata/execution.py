"""How a module's runs execute: the executor of its jobs, how many steps run at once, and the
CPU and memory of each stage's process or Kubernetes pod.

What the settings do is in `etl_assets.execution`; this is only their strict model.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from etl_assets.metadata.base import _Model

EXECUTORS = ("in_process", "multiprocess", "k8s")
Executor = Literal["in_process", "multiprocess", "k8s"]

# Kubernetes quantities, restricted to the spellings a reader recognises: cores or millicores,
# and bytes with a binary or decimal suffix
CPU_PATTERN = r"^([1-9][0-9]*m|[0-9]+(\.[0-9]{1,3})?)$"
MEMORY_PATTERN = r"^[1-9][0-9]*(Ki|Mi|Gi|Ti|k|M|G|T)?$"

Cpu = Annotated[
    str,
    Field(pattern=CPU_PATTERN, description="cores (`1`, `0.5`) or millicores (`250m`)"),
]
Memory = Annotated[
    str,
    Field(pattern=MEMORY_PATTERN, description="bytes with a suffix: `512Mi`, `2Gi`, `1G`"),
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
    """Resources per stage; `default` applies to every stage that gives none, `run` to the run's
    own process (the run pod in Kubernetes)."""

    default: Resources | None = None
    run: Resources | None = None
    extract: Resources | None = None
    clean: Resources | None = None
    anonymize: Resources | None = None
    outbox: Resources | None = None
    upload: Resources | None = None

    def for_stage(self, stage: str) -> Resources | None:
        """The resources of `stage`'s steps: its own, else `default`."""
        own = getattr(self, stage)
        return own if own is not None else self.default


class Execution(_Model):
    """The executor of the module's jobs and the resources of its steps."""

    executor: Executor | None = Field(
        default=None,
        description="in_process | multiprocess | k8s; default: the deployment's (DM_EXECUTOR)",
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
