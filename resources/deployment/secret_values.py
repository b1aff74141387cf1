"""`SecretsResource`: the values module metadata names by environment variable (connection URLs
and secrets, pseudonymization keys), read where the step runs; and the deployment's own secrets,
masked in every run."""

from __future__ import annotations

import os
import secrets as _secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg
from pydantic import Field

from resources.deployment.environment import Deployment
from resources.deployment.values import DeploymentError
from resources.masking import Masker

# the deployment's own secrets: masked in every run, whatever the module
ALWAYS_MASKED = (
    "DM_POSTGRES_URL",
    "DAGSTER_PG_URL",
    "DM_S3_ACCESS_KEY_ID",
    "DM_S3_SECRET_ACCESS_KEY",
    "DM_PSEUDONYM_KEY",
    "DM_PROXY_SECRET",
    "DM_SMTP_PASSWORD",
    "DM_ALERT_URLS",  # apprise URLs may carry SMTP or webhook passwords
)


class SecretsResource(dg.ConfigurableResource):
    """Values that module metadata names by environment variable: connection URLs and secrets,
    pseudonymization keys. Read where the step runs, never stored in config or metadata."""

    generate_missing_keys_in: str | None = Field(
        default=None,
        description="local deployments: a folder where a missing key is generated once and kept",
    )
    mask_env: list[str] = Field(
        default_factory=list,
        description="DM_MASK_ENV: further variables whose values are masked in all output",
    )

    def masker(self, names: Iterable[str] = ()) -> Masker:
        """Masks the values of `names` (a module's secret variables), of the deployment's own
        secrets and of DM_MASK_ENV's variables, wherever a run writes or logs text."""
        wanted = {*names, *ALWAYS_MASKED, *self.mask_env}
        values = [self.get(n) for n in sorted(wanted)]
        values += [self._generated_key(n) for n in sorted(wanted) if not self.get(n)]
        return Masker(values)

    def _generated_key(self, name: str) -> str | None:
        if self.generate_missing_keys_in is None:
            return None
        path = Path(self.generate_missing_keys_in) / f"{name.lower()}.key"
        return path.read_text().strip() if path.is_file() else None

    def get(self, name: str) -> str | None:
        """The value of environment variable `name`, or None when unset or empty."""
        value = os.environ.get(name)
        return value or None

    def environment(self, names: list[str] | tuple[str, ...]) -> dict[str, str]:
        """The given variables that are set (for a script's minimal environment)."""
        return {n: os.environ[n] for n in names if n in os.environ}

    def key(self, name: str) -> bytes:
        """A secret key (e.g. HMAC for pseudonyms): the variable, or a generated local one."""
        value = self.get(name)
        if value:
            return value.encode("utf-8")
        if self.generate_missing_keys_in is None:
            raise DeploymentError(f"the secret key {name} is not set in the environment")
        path = Path(self.generate_missing_keys_in) / f"{name.lower()}.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process created it first
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(_secrets.token_hex(32))
        return path.read_text().strip().encode("utf-8")


def deployment_secret(env: Mapping[str, str], deployment: Deployment, name: str) -> bytes:
    """A secret from the environment, or (local deployments only) one generated once."""
    value = env.get(name)
    if value:
        return value.encode("utf-8")
    if not deployment.local:
        raise DeploymentError(f"DM_DEPLOYMENT=prod needs {name} set in the environment")
    keys = SecretsResource(generate_missing_keys_in=str(deployment.dagster_home / "secrets"))
    return keys.key(name)
