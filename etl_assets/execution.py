"""How a module's runs execute: the one place that chooses the executor of its jobs, the tags the
run queue limits, and the Kubernetes pod settings of its run and of each step.

- **Executor.** The module's `execution.executor`, else the deployment's (`DM_EXECUTOR`,
  default `auto`): `in_process` (every step in the run's process: no start-up cost per step),
  `multiprocess` (a process per step, `maxConcurrent` at once, forked from a server that has
  the code location imported already) or `k8s` (dagster-k8s's `k8s_job_executor`: a Kubernetes
  Job per step, so each shard's extraction and each table's stages get their own pod). `auto`
  is `in_process` unless the module has steps worth running side by side (a sharded or
  range-partitioned source) or asks for `maxConcurrent`, then `multiprocess`. `k8s` needs a
  deployment on Kubernetes (`DM_EXECUTOR=k8s`); elsewhere it runs as `multiprocess` with the
  same `maxConcurrent`.
- **Run queue.** Every run of a module's job carries `dm/module=<module>` and one
  `dm-connection/<name>=<type>` tag per named connection its steps talk to; the queued run
  coordinator's `tag_concurrency_limits` (deploy/) cap runs per module and per connection.
  Steps carry the connection tags of their own connections.
- **Pods.** `dagster-k8s/config` tags: on runs, the run pod's labels and resources; on steps
  (op tags), the step pod's labels and the CPU and memory of its stage. A stage's `cpu` becomes
  the container's CPU request, its `memory` both the memory request and limit (so a step that
  outgrows it is killed by name instead of starving its node).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import dagster as dg

from etl_assets.metadata import CollectionEntry, DataModule, Execution, Resources

MODULE_TAG = "dm/module"
STAGE_LABEL = "dm/stage"
CONNECTION_TAG_PREFIX = "dm-connection/"
K8S_CONFIG_TAG = "dagster-k8s/config"
DEFAULT_MAX_CONCURRENT = 4
STEP_STAGES = ("extract", "clean", "anonymize", "outbox", "upload")
MEBIBYTE = 1024 * 1024


# --- the executor -------------------------------------------------------------------------------


def has_parallel_steps(model: DataModule) -> bool:
    """Whether some source is read by several steps that can run side by side (shards or
    ranges): what makes a process per step pay for its start-up."""
    return any(
        getattr(e.extract, "shards", None) or getattr(e.extract, "partition", None)
        for e in model.collection
    )


def executor_name(execution: Execution, deployment_default: str, parallel: bool = False) -> str:
    """`in_process`, `multiprocess` or `k8s`: what runs this module's steps in this deployment;
    `parallel` says whether the module has steps worth running side by side (for `auto`)."""
    chosen = execution.executor or deployment_default
    if chosen == "auto":
        wants_parallel = parallel or execution.maxConcurrent is not None
        return "multiprocess" if wants_parallel else "in_process"
    if chosen == "k8s" and deployment_default != "k8s":
        return "multiprocess"  # not on Kubernetes: the same per-step parallelism, in processes
    return chosen


def module_executor_name(model: DataModule, deployment_default: str) -> str:
    return executor_name(model.execution, deployment_default, has_parallel_steps(model))


def max_concurrent(execution: Execution) -> int:
    return execution.maxConcurrent or DEFAULT_MAX_CONCURRENT


def executor_config(execution: Execution) -> dict:
    """The config of the multiprocess and k8s executors (the same keys for both)."""
    return {"max_concurrent": max_concurrent(execution)}


# A step process forks from a server that imported the code location once (a fresh interpreter
# per step spends seconds importing Dagster, pandas and pyarrow before any work)
PRELOAD_MODULES = ["etl_assets.definitions"]


def multiprocess_config(execution: Execution) -> dict:
    return {
        **executor_config(execution),
        "start_method": {"forkserver": {"preload_modules": list(PRELOAD_MODULES)}},
    }


def executor_for(model: DataModule, deployment_default: str) -> dg.ExecutorDefinition:
    """The executor definition of the module's jobs."""
    name = module_executor_name(model, deployment_default)
    if name == "in_process":
        return dg.in_process_executor
    if name == "k8s":
        # imported here: the Kubernetes client costs every other deployment ~0.6 s per start
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(executor_config(model.execution))
    return dg.multiprocess_executor.configured(multiprocess_config(model.execution))


# --- connections and the run queue --------------------------------------------------------------


def entry_connections(entry: CollectionEntry) -> list[str]:
    """The named connections one collection entry (or one shard of it) reads from."""
    shards = getattr(entry.extract, "shards", None)
    if shards:
        return list(shards)
    name = getattr(entry.extract, "connection", None)
    return [name] if name else []


def stage_connections(model: DataModule, stage: str, table: str | None = None) -> list[str]:
    """The named connections the steps of `stage` (for `table`, or every table) talk to: the
    sources for `extract`, the Kafka sources whose offsets `outbox` commits, the sink for
    `upload`."""
    entries = [e for e in model.collection if table is None or e.table == table]
    if stage == "extract":
        names = [n for e in entries for n in entry_connections(e)]
    elif stage == "outbox":
        names = [n for e in entries if e.extract.type == "kafka" for n in entry_connections(e)]
    elif stage == "upload" and model.upload.sink is not None and model.upload.sink.connection:
        names = [model.upload.sink.connection]
    else:
        names = []
    return sorted(set(names))


def connection_tags(model: DataModule, names: Iterable[str]) -> dict[str, str]:
    """`dm-connection/<name>: <type>` for each named connection."""
    types = {c.name: c.type for c in model.connections}
    return {f"{CONNECTION_TAG_PREFIX}{n}": types.get(n, "unknown") for n in sorted(set(names))}


# --- Kubernetes resources -----------------------------------------------------------------------


def container_resources(resources: Resources | None) -> dict[str, dict[str, str]]:
    """A container's `resources`: CPU as a request; memory as the request and the limit."""
    if resources is None:
        return {}
    requests = {k: v for k, v in (("cpu", resources.cpu), ("memory", resources.memory)) if v}
    out: dict[str, dict[str, str]] = {"requests": requests}
    if resources.memory:
        out["limits"] = {"memory": resources.memory}
    return out


def _cpu(value: Decimal) -> str:
    return f"{int(value * 1000)}m"


def _memory(value: Decimal) -> str:
    mebibytes = value / MEBIBYTE
    return f"{int(mebibytes)}Mi" if mebibytes == int(mebibytes) else str(int(value))


def run_resources(execution: Execution, executor: str) -> Resources | None:
    """The run process's resources: `resources.run` if given; else, when the run's own process
    executes the steps, what its steps need (the largest stage; times `maxConcurrent` for
    `multiprocess`). With `k8s` the run pod only coordinates: the deployment's default."""
    given = execution.resources
    if given.run is not None or executor == "k8s":
        return given.run
    stages = [r for r in (given.for_stage(s) for s in STEP_STAGES) if r is not None]
    if not stages:
        return None
    from kubernetes.utils import parse_quantity  # the Kubernetes client: ~0.6 s to import

    cpus = [parse_quantity(r.cpu) for r in stages if r.cpu]
    memories = [parse_quantity(r.memory) for r in stages if r.memory]
    if not cpus and not memories:
        return None
    factor = 1 if executor == "in_process" else max_concurrent(execution)
    return Resources(
        cpu=_cpu(max(cpus) * factor) if cpus else None,
        memory=_memory(max(memories) * factor) if memories else None,
    )


def k8s_config(labels: dict[str, str], resources: Resources | None) -> dict[str, object]:
    """A `dagster-k8s/config` value: labels on the Job and its pod, the container's resources."""
    config: dict[str, object] = {
        "job_metadata": {"labels": dict(labels)},
        "pod_template_spec_metadata": {"labels": dict(labels)},
    }
    if resources is not None:
        config["container_config"] = {"resources": container_resources(resources)}
    return config


# --- tags of runs and steps ---------------------------------------------------------------------


def run_tags(model: DataModule, stages: Iterable[str], deployment_default: str) -> dict:
    """The tags of every run of a job over `stages`: module, connections, the run pod's config."""
    stages = list(stages)
    executor = module_executor_name(model, deployment_default)
    names = [n for stage in stages for n in stage_connections(model, stage)]
    return {
        MODULE_TAG: model.name,
        **connection_tags(model, names),
        K8S_CONFIG_TAG: k8s_config(
            {MODULE_TAG: model.name}, run_resources(model.execution, executor)
        ),
    }


def step_tags(model: DataModule, stage: str, connections: Iterable[str] = ()) -> dict:
    """The op tags of one step: its connections, its pod's labels and its stage's resources."""
    labels = {MODULE_TAG: model.name, STAGE_LABEL: stage}
    return {
        **connection_tags(model, connections),
        K8S_CONFIG_TAG: k8s_config(labels, model.execution.resources.for_stage(stage)),
    }
