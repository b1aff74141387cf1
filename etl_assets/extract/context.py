"""What a connector may need besides its entry: the module, the version, secrets, a log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl_assets.connections import ResolvedConnection, connection_or_default
from etl_assets.metadata import DataModule, ScriptCollector
from resources.deployment import SecretsResource

# what every script gets from the environment, besides the variables its `env` names
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


@dataclass
class ExtractContext:
    """The context of one extraction step (also usable outside Dagster, e.g. in tests)."""

    module: DataModule | None = None
    folder: Path = Path(".")
    version: str = "0.0.0"
    secrets: SecretsResource = field(default_factory=SecretsResource)
    storage_root: Path | None = None
    log: Any = field(default_factory=lambda: logging.getLogger("datamodule_etl.extract"))
    shard: str | None = None
    partition: int | None = None  # the range of a partitioned sql source (0-based)
    run_id: str | None = None  # DM_RUN_ID of its scripts: what a dead run's cleanup looks for

    def connection(self, name: str | None, kind: str | tuple[str, ...]) -> ResolvedConnection:
        """The named connection (or the deployment's default for `kind`), secrets resolved."""
        if self.module is None:
            raise RuntimeError("connections need the module: build ExtractContext(module=...)")
        return connection_or_default(self.module, name, kind, self.secrets.get)

    def script_environment(self, script: ScriptCollector, extra: dict[str, str]) -> dict[str, str]:
        """A script's minimal environment: the base variables, those it names, and `extra`."""
        env = self.secrets.environment((*BASE_ENV, *script.env))
        if self.module is not None:
            env["DM_MODULE"] = self.module.name
        env["DM_VERSION"] = self.version
        if self.run_id:
            env["DM_RUN_ID"] = self.run_id
        env.update(extra)
        return env
