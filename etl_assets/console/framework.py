"""What every console handler shares: who is signed in (`Ctx`), the guard (`require`), CSRF
on every form, rendering, and the audit writer.

A handler is a plain (synchronous) function of a `Ctx`; `require(action)` turns it into a
Starlette endpoint that refuses a role without `action` with a 403 page (audited), parses and
checks a POST's form (the console's CSRF token, on top of the sign-in middleware's same-origin
rule), and runs the handler in Starlette's thread pool (database calls block).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import dagster as dg
import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from etl_assets import audit
from etl_assets.web.auditing import Auditor
from etl_assets.web.context import principal_of
from etl_assets.web.identity import Principal
from etl_assets.web.roles import may, sees_restricted
from etl_assets.web.transport import CSRF_KEY
from resources.deployment import AuditSettings
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource

PREFIX = "/console"  # etl_assets/web/server.py routes it here (CONSOLE_PREFIX)
CSRF_FIELD = "csrf"

MAX_FORM_BYTES = 4 << 20
TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class ConsoleServices:
    """What the console reads and changes; built by `dmetl serve` from the deployment."""

    instance: dg.DagsterInstance
    postgres: PostgresResource
    outbox: OutboxResource
    modules_dir: Path
    audit_settings: AuditSettings
    checkpoint_store: Any = None
    storage: Any = None  # the ParquetIOManager: clean data as t-closeness's reference


@dataclass(frozen=True)
class Console:
    """The services plus the web layer's auditor and the secret the CSRF tokens are keyed by."""

    services: ConsoleServices
    auditor: Auditor
    secret: bytes
    process_context: Any = None  # the webserver's RoleProcessContext: launches runs


def csrf_token(secret: bytes, principal: Principal, session_csrf: str | None) -> str:
    """Per user and session: keyed by the deployment's session secret, never stored."""
    msg = f"console-csrf\0{principal.name}\0{session_csrf or ''}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()[:40]


class Ctx:
    """One request: the principal and its roles, the console's services, the parsed form."""

    def __init__(self, request: Request, console: Console):
        self.request = request
        self.console = console
        self.services = console.services
        self.principal = principal_of(request)
        self.roles = self.principal.roles
        self.csrf = csrf_token(console.secret, self.principal, request.scope.get(CSRF_KEY))
        self.form: dict[str, list[str]] = {}

    def workspace(self):
        """Dagster's view of the workspace for this request (with this principal's roles)."""
        return self.console.process_context.create_request_context(self.request)

    def may(self, action: str) -> bool:
        return may(self.roles, action)

    @property
    def sees_restricted(self) -> bool:
        return sees_restricted(self.roles)

    def param(self, name: str, default: str = "") -> str:
        return self.request.path_params.get(name) or self.request.query_params.get(name, default)

    def field(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0].strip() if values else default

    def fields(self, name: str) -> list[str]:
        return list(self.form.get(name, []))

    def page_number(self) -> int:
        try:
            return max(1, int(self.request.query_params.get("page", "1")))
        except ValueError:
            return 1

    def url_with(self, **params: Any) -> str:
        """This page's URL with some query parameters replaced (None drops one)."""
        query = dict(self.request.query_params)
        query.update({k: str(v) for k, v in params.items() if v is not None})
        for k in [k for k, v in params.items() if v is None]:
            query.pop(k, None)
        return f"{self.request.url.path}?{urlencode(query)}" if query else self.request.url.path

    def audit(
        self,
        action: audit.Action,
        *,
        target: audit.Target | None = None,
        outcome: audit.Outcome = audit.Outcome.OK,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Record what this request did. `detail` names keys, counts, reasons: never a value of
        the restricted zone."""
        return self.console.auditor.record(
            self.principal, action, target=target, outcome=outcome,
            detail={"via": "console", **(detail or {})},
        )  # fmt: skip


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def cell(value: Any) -> str:
    """A table cell: empty for a missing value (None, NaN, pandas' NA)."""
    if value is None:
        return ""
    try:
        if value != value or str(value) in ("<NA>", "NaT"):  # NaN, NA
            return ""
    except (TypeError, ValueError):  # NA's truth value is ambiguous
        return ""
    return str(value)


_env.filters["cell"] = cell


def template_env() -> jinja2.Environment:
    return _env


def render(ctx: Ctx, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = _env.get_template(template).render(ctx=ctx, prefix=PREFIX, notice=notice(ctx), **values)
    return HTMLResponse(html, status, headers={"cache-control": "no-store"})


def _sign(ctx: Ctx, message: str) -> str:
    return hmac.new(ctx.console.secret, f"done\0{message}".encode(), "sha256").hexdigest()[:20]


def redirect(ctx: Ctx, path: str, message: str | None = None) -> RedirectResponse:
    """After a POST: back to a page (303, so a reload does not repeat the action) that says
    what was done; the message is signed, so a link cannot make the console say anything."""
    if message:
        query = urlencode({"done": message, "sig": _sign(ctx, message)})
        path += ("&" if "?" in path else "?") + query
    return RedirectResponse(path, 303)


def notice(ctx: Ctx) -> str | None:
    """The signed message of the redirect that led here, if any."""
    message = ctx.request.query_params.get("done")
    sig = ctx.request.query_params.get("sig", "")
    if message and hmac.compare_digest(sig, _sign(ctx, message)):
        return message
    return None


def forbidden(ctx: Ctx, action: str, why: str | None = None) -> HTMLResponse:
    ctx.audit(
        audit.Action.CONSOLE_REFUSED, outcome=audit.Outcome.DENIED,
        detail={"action": action, "path": ctx.request.url.path, "method": ctx.request.method},
    )  # fmt: skip
    reason = why or f"Your role ({ctx.principal.role_label}) may not do this ({action})."
    return render(ctx, "forbidden.html", 403, reason=reason)


def problem(ctx: Ctx, title: str, message: str, status: int = 400) -> HTMLResponse:
    return render(ctx, "problem.html", status, title=title, message=message)


async def _read_form(request: Request) -> dict[str, list[str]] | None:
    """An `application/x-www-form-urlencoded` body (what the console's forms send)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return None
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


Handler = Callable[[Ctx], Response]


def require(action: str) -> Callable[[Handler], Callable[[Request], Any]]:
    """Guard a handler with one of our actions (etl_assets.web.roles.ACTIONS); POSTs also need
    a form carrying this user's CSRF token."""

    def decorate(fn: Handler) -> Callable[[Request], Any]:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            ctx = Ctx(request, request.app.state.console)
            if request.method == "POST":
                form = await _read_form(request)
                token = (form or {}).get(CSRF_FIELD, [""])[0]
                if form is None or not hmac.compare_digest(token, ctx.csrf):
                    why = "This form has expired or did not come from this console; reload it."
                    return await run_in_threadpool(forbidden, ctx, "csrf", why)
                ctx.form = form
            if not ctx.may(action):
                return await run_in_threadpool(forbidden, ctx, action)
            return await run_in_threadpool(fn, ctx)

        endpoint.console_action = action  # type: ignore[attr-defined]
        return endpoint

    return decorate
