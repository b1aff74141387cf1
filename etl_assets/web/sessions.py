"""Sessions in signed cookies: HttpOnly, SameSite=Lax, Secure behind https, with an expiry that
the server checks (the cookie's Max-Age only asks the browser to forget it)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from etl_assets.web.identity import Principal

SESSION_COOKIE = "dm_session"
FLOW_COOKIE = "dm_oidc"  # state, nonce and PKCE verifier of a sign-in in progress
FLOW_MAX_AGE = 600


@dataclass(frozen=True)
class Session:
    principal: Principal
    expires: int
    csrf: str
    sid: str


class SessionCodec:
    """Signs and reads the session and sign-in-flow cookies with the deployment's secret."""

    def __init__(self, secret: bytes, max_age: int, secure: bool):
        self._session = URLSafeTimedSerializer(secret, salt="dm-session")
        self._flow = URLSafeTimedSerializer(secret, salt="dm-oidc-flow")
        self.max_age = max_age
        self.secure = secure

    def issue(self, principal: Principal, now: float | None = None) -> tuple[Session, str]:
        now = time.time() if now is None else now
        session = Session(
            principal, int(now) + self.max_age, secrets.token_urlsafe(24), secrets.token_hex(8)
        )
        payload = {
            "p": principal.to_claims(),
            "exp": session.expires,
            "csrf": session.csrf,
            "sid": session.sid,
        }
        return session, self._session.dumps(payload)

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session in `cookie`, or None when it is missing, forged or expired."""
        if not cookie:
            return None
        try:
            payload = self._session.loads(cookie, max_age=self.max_age)
        except BadSignature:
            return None
        now = time.time() if now is None else now
        if not isinstance(payload, dict) or payload.get("exp", 0) <= now:
            return None
        try:
            principal = Principal.from_claims(payload["p"])
        except (KeyError, ValueError, TypeError):
            return None
        return Session(principal, int(payload["exp"]), payload["csrf"], payload["sid"])

    def flow(self, data: dict) -> str:
        return self._flow.dumps(data)

    def read_flow(self, cookie: str | None) -> dict | None:
        if not cookie:
            return None
        try:
            data = self._flow.loads(cookie, max_age=FLOW_MAX_AGE)
        except BadSignature:
            return None
        return data if isinstance(data, dict) else None

    def cookie_args(self, max_age: int) -> dict:
        return {
            "max_age": max_age,
            "httponly": True,
            "samesite": "lax",
            "secure": self.secure,
            "path": "/",
        }
