"""Who a request is from, per sign-in mode: the local user, a session cookie (OIDC), or the
headers of a trusted proxy — trusted only from its configured addresses *and* with the shared
secret, so neither a rewritten X-Forwarded-For nor a direct client can forge an identity."""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from http.cookies import SimpleCookie

from starlette.datastructures import Headers
from starlette.types import Scope

from etl_assets import audit
from etl_assets.web.auditing import Auditor
from etl_assets.web.identity import Principal, RoleMapping
from etl_assets.web.roles import Role
from etl_assets.web.sessions import SESSION_COOKIE, SessionCodec
from resources.deployment import WebSettings


def cookie(headers: Headers, name: str) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    jar = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header: treat as none
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


def principal_from_claims(mapping: RoleMapping, claims: dict, roles_claim: str) -> Principal:
    """The OIDC user: email, else preferred_username, else sub; roles from `roles_claim`."""
    name = claims.get("email") or claims.get("preferred_username") or claims["sub"]
    raw = claims.get(roles_claim, [])
    groups = [raw] if isinstance(raw, str) else [str(g) for g in raw or []]
    return Principal.build(mapping, str(name), claims.get("email"), groups, "oidc")


class Authenticator:
    def __init__(
        self, settings: WebSettings, mapping: RoleMapping, codec: SessionCodec, auditor: Auditor,
        local_user: str,
    ):  # fmt: skip
        self.settings, self.mapping, self.codec, self.auditor = settings, mapping, codec, auditor
        self.local = Principal(name=local_user, roles=frozenset({Role.ADMIN}), mode="local")
        proxy = settings.proxy
        self.trusted = (
            [ipaddress.ip_network(a, strict=False) for a in proxy.trusted] if proxy else []
        )
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, scope: Scope, headers: Headers) -> tuple[Principal | None, str | None]:
        mode = self.settings.mode
        if mode == "local":
            return self.local, None
        if mode == "proxy":
            return self._proxied(scope, headers), None
        session = self.codec.read(cookie(headers, SESSION_COOKIE))
        return (session.principal, session.csrf) if session else (None, None)

    def _trusted_peer(self, scope: Scope) -> bool:
        peer = (scope.get("client") or ("", 0))[0]
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in self.trusted)

    def _proxied(self, scope: Scope, headers: Headers) -> Principal | None:
        proxy = self.settings.proxy
        assert proxy is not None
        user = headers.get(proxy.user_header)
        if not user:
            return None
        secret = headers.get(proxy.secret_header) or ""
        peer = (scope.get("client") or ("?", 0))[0]
        if not self._trusted_peer(scope) or not hmac.compare_digest(secret, proxy.secret):
            why = "untrusted address" if not self._trusted_peer(scope) else "wrong proxy secret"
            self.auditor.record(
                Principal(name=user, mode="proxy"), audit.Action.SIGN_IN,
                outcome=audit.Outcome.DENIED, detail={"mode": "proxy", "reason": why, "peer": peer},
            )  # fmt: skip
            return None
        groups = [
            g.strip() for g in (headers.get(proxy.groups_header) or "").split(",") if g.strip()
        ]
        principal = Principal.build(
            self.mapping, user, headers.get(proxy.email_header) or None, groups, "proxy"
        )
        self._note_sign_in(principal)
        return principal

    def _note_sign_in(self, principal: Principal) -> None:
        """A proxied user's first request (within a session's lifetime) is their sign-in."""
        now = time.time()
        with self._lock:
            last = self._seen.get(principal.name)
            self._seen[principal.name] = now
        if last is None or now - last > self.settings.session_max_age:
            self.auditor.record(
                principal,
                audit.Action.SIGN_IN,
                detail={"mode": "proxy", "roles": principal.role_label},
            )

    def forget(self, name: str) -> None:
        with self._lock:
            self._seen.pop(name, None)
