"""OpenID Connect sign-in: authorization code with PKCE (S256) through authlib, the ID token
checked with joserfc against the provider's keys (issuer, audience, expiry, nonce)."""

from __future__ import annotations

import secrets
import time
import warnings
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # authlib 1.9 prefers the httpx2 package and warns when it falls back to httpx (which works)
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from resources.deployment import OidcSettings

DISCOVERY_TTL = 300


class SignInFailed(ValueError):
    """The provider's answer cannot sign anyone in (the message says what was wrong)."""


class OidcClient:
    def __init__(self, settings: OidcSettings, redirect_uri: str):
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._meta: dict[str, Any] | None = None
        self._meta_at = 0.0

    def _client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            scope=self.settings.scopes,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=15,
        )

    async def metadata(self) -> dict[str, Any]:
        if self._meta is None or time.time() - self._meta_at > DISCOVERY_TTL:
            url = f"{self.settings.issuer}/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(timeout=15) as http:
                    resp = await http.get(url)
                    resp.raise_for_status()
            except httpx.HTTPError as exc:
                raise SignInFailed(
                    f"the OIDC provider's discovery at {url} failed: {exc}"
                ) from None
            self._meta, self._meta_at = resp.json(), time.time()
        return self._meta

    async def start(self) -> tuple[str, dict[str, str]]:
        """The provider's authorization URL and the flow state to keep in a cookie."""
        meta = await self.metadata()
        verifier = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(16)
        async with self._client() as client:
            url, state = client.create_authorization_url(
                meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
            )
        return url, {"state": state, "nonce": nonce, "verifier": verifier}

    async def finish(self, code: str, flow: dict[str, str]) -> dict[str, Any]:
        """Exchange the code (with the PKCE verifier) and return the ID token's checked claims."""
        meta = await self.metadata()
        async with self._client() as client:
            try:
                token = await client.fetch_token(
                    meta["token_endpoint"], code=code, code_verifier=flow["verifier"]
                )
            except Exception as exc:  # authlib raises OAuthError or httpx errors
                raise SignInFailed(f"the OIDC provider refused the code: {exc}") from None
        id_token = token.get("id_token")
        if not id_token:
            raise SignInFailed("the OIDC provider returned no ID token (is 'openid' in scopes?)")
        async with httpx.AsyncClient(timeout=15) as http:
            keys = KeySet.import_key_set((await http.get(meta["jwks_uri"])).json())
        try:
            decoded = jwt.decode(id_token, keys)
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": meta.get("issuer", self.settings.issuer)},
                aud={"essential": True, "value": self.settings.client_id},
                exp={"essential": True},
                nonce={"essential": True, "value": flow["nonce"]},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise SignInFailed(f"the ID token is not valid: {exc}") from None
        return dict(decoded.claims)

    async def end_session_url(self) -> str | None:
        try:
            return (await self.metadata()).get("end_session_endpoint")
        except SignInFailed:
            return None
