"""The sign-in and transport rules in front of everything `dmetl serve` answers.

- Every request is signed in (a session, the trusted proxy's headers, or the local user) except
  `/auth/*`; the principal goes into the ASGI scope for Dagster's request context.
- Local mode answers loopback peers only, and only for a loopback `Host` (no DNS rebinding).
- State-changing requests (any method but GET/HEAD/OPTIONS) and websocket handshakes need an
  `Origin` of this server; without one, a state-changing request needs the `X-DM-CSRF` header
  (the session's token; any value when there is no session cookie): a cross-site page can send
  neither without a CORS preflight, which is never granted.
- `/report_asset_*` and `/download_debug/*` need a role that may do it; every attempt at the
  former is audited.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from etl_assets import audit
from etl_assets.web.auditing import Auditor
from etl_assets.web.context import PRINCIPAL_KEY
from etl_assets.web.identity import Principal
from etl_assets.web.roles import may, may_mutate
from resources.deployment import LOOPBACK_HOSTS

ORIGIN_REFUSED_KEY = "dm.origin_refused"
CSRF_KEY = "dm.csrf"  # the session's CSRF token (None without a session), for the console's forms
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_HEADER = "x-dm-csrf"
REPORT_PREFIXES = (
    "/report_asset_materialization/",
    "/report_asset_check/",
    "/report_asset_observation/",
)
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
]

# authenticate(scope, headers) -> (principal or None, session csrf token or None)
Authenticate = Callable[[Scope, Headers], tuple[Principal | None, str | None]]


def host_name(host_header: str) -> str:
    return urlsplit(f"//{host_header}").hostname or ""


def request_origin(scope: Scope, headers: Headers) -> str:
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme"))
    return f"{scheme}://{headers.get('host', '')}"


class SignInMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticate: Authenticate,
        auditor: Auditor,
        mode: str,
        public_url: str | None,
        login_path: str | None,
    ):
        self.app, self.authenticate, self.auditor = app, authenticate, auditor
        self.mode, self.login_path = mode, login_path
        self.public_origin = public_url and "{0.scheme}://{0.netloc}".format(urlsplit(public_url))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await self._refuse(scope, receive, send, refusal)
            return
        if scope["path"].startswith("/auth/"):
            refusal = self._origin_refusal(scope, headers, None)
            if refusal is not None:
                await self._refuse(scope, receive, send, refusal)
                return
            await self.app(scope, receive, self._with_headers(send))
            return
        principal, csrf = self.authenticate(scope, headers)
        if principal is None:
            await self._refuse(scope, receive, send, self._not_signed_in(scope, headers))
            return
        refusal = self._origin_refusal(scope, headers, csrf)
        if refusal is not None and scope["type"] == "http" and scope["path"] == "/graphql":
            # the GraphQL endpoint refuses it too, after recording which mutation it was
            scope[ORIGIN_REFUSED_KEY] = refusal.body.decode()
            refusal = None
        refusal = refusal or self._route_refusal(scope, principal)
        if refusal is not None:
            await self._refuse(scope, receive, send, refusal)
            return
        scope[PRINCIPAL_KEY] = principal
        scope[CSRF_KEY] = csrf
        await self.app(scope, receive, self._with_headers(send))

    # --- rules --------------------------------------------------------------------------------

    def _refusal(self, scope: Scope, headers: Headers) -> Response | None:
        if self.mode != "local":
            return None
        peer = (scope.get("client") or ("", 0))[0]
        if peer not in LOOPBACK_HOSTS:
            return PlainTextResponse("local mode answers loopback clients only", 403)
        if host_name(headers.get("host", "")) not in LOOPBACK_HOSTS:
            return PlainTextResponse(
                "local mode answers requests for 127.0.0.1, localhost or [::1] only", 403
            )
        return None

    def allowed_origins(self, scope: Scope, headers: Headers) -> set[str]:
        origins = {request_origin(scope, headers)}
        if self.public_origin:
            origins.add(self.public_origin)
        return origins

    def _origin_refusal(self, scope: Scope, headers: Headers, csrf: str | None) -> Response | None:
        websocket = scope["type"] == "websocket"
        if not websocket and scope["method"] in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None:
            if origin in self.allowed_origins(scope, headers):
                return None
            return PlainTextResponse(f"cross-origin request from {origin} refused", 403)
        if websocket:
            return None  # not a browser; still signed in, and subscriptions only
        token = headers.get(CSRF_HEADER)
        if token and (csrf is None or hmac.compare_digest(token, csrf)):
            return None
        return PlainTextResponse(
            "a state-changing request needs an Origin header of this server or X-DM-CSRF", 403
        )

    def _route_refusal(self, scope: Scope, principal: Principal) -> Response | None:
        path = scope["path"]
        if path.startswith(REPORT_PREFIXES):
            roles = principal.roles | principal.owner_roles
            allowed = may_mutate(roles, "reportRunlessAssetEvents")
            asset = path.split("/", 2)[2] if path.count("/") >= 2 else ""
            self.auditor.record(
                principal,
                audit.Action.REPORT_EVENT,
                target=audit.Target(module=asset.split("/")[0] or None, name=asset or None),
                outcome=audit.Outcome.OK if allowed else audit.Outcome.DENIED,
                detail={"route": path.split("/")[1], "method": scope.get("method", "")},
            )
            if not allowed:
                return JSONResponse({"error": "your role may not report asset events"}, 403)
        if path.startswith("/download_debug/") and not may(principal.roles, "restricted.view"):
            return PlainTextResponse("run debug files need the data manager or admin role", 403)
        return None

    def _not_signed_in(self, scope: Scope, headers: Headers) -> Response:
        wants_html = "text/html" in headers.get("accept", "")
        if scope["type"] == "http" and scope["method"] == "GET" and wants_html and self.login_path:
            target = scope["path"] + (
                f"?{scope['query_string'].decode()}" if scope.get("query_string") else ""
            )
            return RedirectResponse(f"{self.login_path}?next={quote(target)}", 302)
        return JSONResponse({"error": "not signed in"}, 401)

    # --- plumbing -----------------------------------------------------------------------------

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, response: Response):
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            # closing before accepting: the server answers the handshake with HTTP 403
            await send(
                {"type": "websocket.close", "code": 1008, "reason": response.body.decode()[:120]}
            )
            return
        await response(scope, receive, self._with_headers(send))

    def _with_headers(self, send: Send) -> Send:
        async def wrapped(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                present = {k.lower() for k, _ in message["headers"]}
                message["headers"] = list(message["headers"]) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in present
                ]
            await send(message)

        return wrapped


def json_error(message: str, status: int, code: str = "DM_FORBIDDEN") -> JSONResponse:
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}, status
    )
