"""How `dmetl serve` signs users in: `DM_WEB_AUTH` = local | oidc | proxy and each mode's
settings (see docs/security.md for every variable)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from resources.deployment.environment import Deployment
from resources.deployment.secret_values import deployment_secret
from resources.deployment.values import DeploymentError, required, whole_number

AUTH_MODES = ("local", "oidc", "proxy")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class OidcSettings:
    """An OpenID Connect provider (authorization code with PKCE); the secret by variable name."""

    issuer: str
    client_id: str
    client_secret: str | None = field(repr=False, default=None)
    scopes: str = "openid email profile"
    roles_claim: str = "groups"


@dataclass(frozen=True)
class ProxySettings:
    """An authenticating reverse proxy: trusted only from `trusted` addresses *with* the secret."""

    trusted: tuple[str, ...]
    secret: str = field(repr=False, default="")
    user_header: str = "X-Forwarded-User"
    email_header: str = "X-Forwarded-Email"
    groups_header: str = "X-Forwarded-Groups"
    secret_header: str = "X-DM-Proxy-Secret"
    logout_url: str | None = None


@dataclass(frozen=True)
class WebSettings:
    """How `dmetl serve` signs users in (see docs/security.md for every variable)."""

    mode: str
    session_secret: bytes = field(repr=False)
    session_max_age: int = 8 * 3600
    public_url: str | None = None
    roles_file: Path | None = None
    oidc: OidcSettings | None = None
    proxy: ProxySettings | None = None


def web_settings(deployment: Deployment, environ: Mapping[str, str] | None = None) -> WebSettings:
    """The sign-in mode and its settings: `DM_WEB_AUTH` = local (default) | oidc | proxy."""
    env = os.environ if environ is None else environ
    mode = env.get("DM_WEB_AUTH") or "local"
    if mode not in AUTH_MODES:
        raise DeploymentError(f"DM_WEB_AUTH={mode!r}: expected one of {', '.join(AUTH_MODES)}")
    if mode == "local" and not deployment.local:
        raise DeploymentError("DM_DEPLOYMENT=prod needs DM_WEB_AUTH=oidc or proxy (not local)")
    oidc = proxy = None
    if mode == "oidc":
        why = "DM_WEB_AUTH=oidc"
        oidc = OidcSettings(
            issuer=required(env, "DM_OIDC_ISSUER", why).rstrip("/"),
            client_id=required(env, "DM_OIDC_CLIENT_ID", why),
            client_secret=env.get("DM_OIDC_CLIENT_SECRET") or None,
            scopes=env.get("DM_OIDC_SCOPES") or "openid email profile",
            roles_claim=env.get("DM_OIDC_ROLES_CLAIM") or "groups",
        )
        required(env, "DM_WEB_PUBLIC_URL", why + " (the redirect URI is built from it)")
    if mode == "proxy":
        why = "DM_WEB_AUTH=proxy"
        trusted = tuple(
            a.strip() for a in required(env, "DM_PROXY_TRUSTED", why).split(",") if a.strip()
        )
        proxy = ProxySettings(
            trusted=trusted,
            secret=required(env, "DM_PROXY_SECRET", why),
            user_header=env.get("DM_PROXY_USER_HEADER") or "X-Forwarded-User",
            email_header=env.get("DM_PROXY_EMAIL_HEADER") or "X-Forwarded-Email",
            groups_header=env.get("DM_PROXY_GROUPS_HEADER") or "X-Forwarded-Groups",
            logout_url=env.get("DM_PROXY_LOGOUT_URL") or None,
        )
    roles_file = env.get("DM_WEB_ROLES_FILE")
    return WebSettings(
        mode=mode,
        session_secret=deployment_secret(env, deployment, "DM_WEB_SESSION_SECRET"),
        session_max_age=whole_number(env, "DM_WEB_SESSION_MAX_AGE", 8 * 3600),
        public_url=(env.get("DM_WEB_PUBLIC_URL") or "").rstrip("/") or None,
        roles_file=Path(roles_file) if roles_file else None,
        oidc=oidc,
        proxy=proxy,
    )
