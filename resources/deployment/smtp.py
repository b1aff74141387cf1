"""Where notification e-mails go: `DM_SMTP_*`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from resources.deployment.values import flag, whole_number


@dataclass(frozen=True)
class SmtpSettings:
    """Where notification e-mails go (access requests and decisions; alerts may share it).
    `host` None means e-mail is off; the password is read from `DM_SMTP_PASSWORD` only."""

    host: str | None
    port: int = 25
    sender: str = "dmetl@localhost"
    user: str | None = None
    password: str | None = field(repr=False, default=None)
    starttls: bool = False
    timeout_seconds: int = 10

    @property
    def enabled(self) -> bool:
        return bool(self.host)


def smtp_settings(environ: Mapping[str, str] | None = None) -> SmtpSettings:
    """`DM_SMTP_HOST`, `DM_SMTP_PORT` (25), `DM_SMTP_FROM`, `DM_SMTP_USER`, `DM_SMTP_PASSWORD`,
    `DM_SMTP_STARTTLS` (false)."""
    env = os.environ if environ is None else environ
    return SmtpSettings(
        host=env.get("DM_SMTP_HOST") or None,
        port=whole_number(env, "DM_SMTP_PORT", 25, unit="port number"),
        sender=env.get("DM_SMTP_FROM") or "dmetl@localhost",
        user=env.get("DM_SMTP_USER") or None,
        password=env.get("DM_SMTP_PASSWORD") or None,
        starttls=flag(env, "DM_SMTP_STARTTLS"),
    )
