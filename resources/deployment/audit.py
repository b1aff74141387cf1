"""The audit log's keys (never in the database) and where its signed checkpoints go."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from resources.deployment.environment import Deployment
from resources.deployment.secret_values import deployment_secret
from resources.deployment.values import whole_number


@dataclass(frozen=True)
class AuditSettings:
    """The audit log's keys (never in the database) and where signed checkpoints go."""

    hmac_key: bytes = field(repr=False)
    signing_key: bytes | None = field(repr=False, default=None)
    verify_key: bytes | None = None
    checkpoints: str = ""
    checkpoint_seconds: int = 300


def audit_settings(
    deployment: Deployment, environ: Mapping[str, str] | None = None
) -> AuditSettings:
    """The audit HMAC key (`DM_AUDIT_HMAC_KEY`), the Ed25519 checkpoint key
    (`DM_AUDIT_SIGNING_KEY`, or only `DM_AUDIT_VERIFY_KEY` to verify) and the checkpoint place
    (`DM_AUDIT_CHECKPOINTS`: a folder or s3://bucket/prefix)."""
    env = os.environ if environ is None else environ
    verify_key = env.get("DM_AUDIT_VERIFY_KEY")
    signing = env.get("DM_AUDIT_SIGNING_KEY")
    if signing or not verify_key:
        signing_key: bytes | None = deployment_secret(env, deployment, "DM_AUDIT_SIGNING_KEY")
    else:
        signing_key = None
    return AuditSettings(
        hmac_key=deployment_secret(env, deployment, "DM_AUDIT_HMAC_KEY"),
        signing_key=signing_key,
        verify_key=verify_key.encode("utf-8") if verify_key else None,
        checkpoints=env.get("DM_AUDIT_CHECKPOINTS")
        or str(deployment.dagster_home / "audit-checkpoints"),
        checkpoint_seconds=whole_number(env, "DM_AUDIT_CHECKPOINT_SECONDS", 300),
    )
