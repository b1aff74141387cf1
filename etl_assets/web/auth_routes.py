"""`/auth/*`: sign in (OIDC: redirect to the provider, then its callback), sign out, and who am I."""

from __future__ import annotations

import html
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from etl_assets import audit
from etl_assets.web.auditing import Auditor
from etl_assets.web.identity import ANONYMOUS
from etl_assets.web.oidc import OidcClient, SignInFailed
from etl_assets.web.sessions import FLOW_COOKIE, FLOW_MAX_AGE, SESSION_COOKIE, SessionCodec
from etl_assets.web.signin import Authenticator, cookie, principal_from_claims

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto}}</style></head>
<body><main><h1>{title}</h1>{body}</main></body></html>"""


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=html.escape(title), body=body), status)


def safe_next(target: str | None) -> str:
    """Only paths on this server (no scheme, no `//host`): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class AuthRoutes:
    def __init__(
        self, authenticator: Authenticator, codec: SessionCodec, auditor: Auditor,
        oidc: OidcClient | None, proxy_logout: str | None,
    ):  # fmt: skip
        self.authenticate, self.codec, self.auditor = authenticator, codec, auditor
        self.oidc, self.proxy_logout = oidc, proxy_logout

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/auth/login", self.login, methods=["GET"]),
                Route("/auth/callback", self.callback, methods=["GET"]),
                Route("/auth/logout", self.logout_form, methods=["GET"]),
                Route("/auth/logout", self.logout, methods=["POST"]),
                Route("/auth/whoami", self.whoami, methods=["GET"]),
            ]
        )

    async def login(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        if self.oidc is None:
            principal, _ = self.authenticate(request.scope, request.headers)
            if principal is not None:
                return RedirectResponse(target, 302)
            return page("Sign in", "<p>Sign in through your organisation's proxy.</p>", 401)
        try:
            url, flow = await self.oidc.start()
        except SignInFailed as exc:
            return page("Sign-in is unavailable", f"<p>{html.escape(str(exc))}</p>", 502)
        response = RedirectResponse(url, 302)
        response.set_cookie(
            FLOW_COOKIE,
            self.codec.flow({**flow, "next": target}),
            **self.codec.cookie_args(FLOW_MAX_AGE),
        )
        return response

    async def callback(self, request: Request) -> Response:
        assert self.oidc is not None
        flow = self.codec.read_flow(request.cookies.get(FLOW_COOKIE))
        params = request.query_params
        if flow is None or params.get("state") != flow.get("state"):
            return self._failed("the sign-in expired or did not start here", "state")
        if params.get("error"):
            return self._failed(f"the provider said: {params.get('error')}", "provider")
        try:
            claims = await self.oidc.finish(params.get("code", ""), flow)
        except SignInFailed as exc:
            return self._failed(str(exc), "token")
        principal = principal_from_claims(
            self.authenticate.mapping, claims, self.oidc.settings.roles_claim
        )
        session, value = self.codec.issue(principal)
        self.auditor.record(
            principal, audit.Action.SIGN_IN,
            detail={"mode": "oidc", "roles": principal.role_label, "session": session.sid},
        )  # fmt: skip
        response = RedirectResponse(safe_next(flow.get("next")), 302)
        response.set_cookie(SESSION_COOKIE, value, **self.codec.cookie_args(self.codec.max_age))
        response.delete_cookie(FLOW_COOKIE, path="/")
        return response

    def _failed(self, why: str, stage: str) -> Response:
        self.auditor.record(
            ANONYMOUS, audit.Action.SIGN_IN, outcome=audit.Outcome.DENIED,
            detail={"mode": "oidc", "stage": stage, "reason": why[:200]},
        )  # fmt: skip
        body = f'<p>{html.escape(why)}</p><p><a href="/auth/login">Sign in again</a></p>'
        return page("Sign-in failed", body, 400)

    async def logout_form(self, request: Request) -> Response:
        body = (
            '<form method="post" action="/auth/logout">'
            '<button type="submit">Sign out</button></form>'
        )
        return page("Sign out", body)

    async def logout(self, request: Request) -> Response:
        principal, _ = self.authenticate(request.scope, request.headers)
        session = self.codec.read(cookie(Headers(scope=request.scope), SESSION_COOKIE))
        if principal is not None:
            detail = {"mode": principal.mode}
            if session:
                detail["session"] = session.sid
            self.auditor.record(principal, audit.Action.SIGN_OUT, detail=detail)
            self.authenticate.forget(principal.name)
        target = self.proxy_logout
        if self.oidc is not None:
            target = await self.oidc.end_session_url()
        body = '<p>You are signed out.</p><p><a href="/auth/login">Sign in again</a></p>'
        response: Response = RedirectResponse(target, 303) if target else page("Signed out", body)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def whoami(self, request: Request) -> Response:
        principal, csrf = self.authenticate(request.scope, request.headers)
        if principal is None:
            login = f"/auth/login?next={quote('/')}"
            return JSONResponse({"signed_in": False, "login": login}, 401)
        return JSONResponse({"signed_in": True, **principal.to_claims(), "csrf": csrf})
