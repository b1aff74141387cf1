"""What every `dmetl` command shares: the deployment, its resources (built once) and the
Dagster instance under its `DAGSTER_HOME`."""

from __future__ import annotations

import fcntl
import shutil
import sys
from functools import cached_property

import dagster as dg

from resources.deployment import PROJECT_ROOT, Deployment, current, resources_for, set_dagster_home
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource


class Session:
    """One CLI invocation's view of the deployment."""

    def __init__(self, deployment: Deployment | None = None):
        self.deployment = deployment or current()

    @cached_property
    def resources(self) -> dict[str, object]:
        """The deployment's resources, as the Definitions get them (runs resolve EnvVars)."""
        return resources_for(self.deployment)

    def _ready(self, key: str):
        """A resource for direct use by the CLI, its EnvVars resolved."""
        return self.resources[key].process_config_and_initialize()  # type: ignore[attr-defined]

    @cached_property
    def postgres(self) -> PostgresResource:
        if self.deployment.embedded_postgres:
            print(f"note: {self.deployment.describe_postgres()}", file=sys.stderr)
        return self._ready("postgres")

    @cached_property
    def outbox(self) -> OutboxResource:
        return self._ready("outbox")

    @cached_property
    def instance(self) -> dg.DagsterInstance:
        """The instance under DAGSTER_HOME, with the project's dagster.yaml on first use.

        Opening it is serialized between `dmetl` processes: a fresh SQLite instance creates its
        tables on first use, and two processes creating them at once fail."""
        set_dagster_home(self.deployment)
        home = self.deployment.dagster_home
        with open(home / ".dmetl.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            target = home / "dagster.yaml"
            source = PROJECT_ROOT / "dagster.yaml"
            if not target.exists() and source.exists():
                shutil.copyfile(source, target)
            instance = dg.DagsterInstance.get()
            instance.get_run_records(limit=1)  # run storage
            instance.get_dynamic_partitions("dm_init")  # event log storage
            instance.all_instigator_state()  # schedule storage
        return instance
