"""`dmetl serve`: the Dagster UI and GraphQL API behind our sign-in, plus (like `dagster dev`)
the daemon, and a thread that signs audit checkpoints."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from etl_assets import audit
from etl_assets.audit import checkpoints
from etl_assets.web._dagster_internals import WorkspaceFileTarget, webserver_version
from etl_assets.web.auditing import Auditor
from etl_assets.web.auth_routes import AuthRoutes
from etl_assets.web.context import RoleProcessContext
from etl_assets.web.identity import Principal, RoleMapping
from etl_assets.web.oidc import OidcClient
from etl_assets.web.roles import Role
from etl_assets.web.sessions import SessionCodec
from etl_assets.web.signin import Authenticator
from etl_assets.web.transport import SignInMiddleware
from etl_assets.web.webserver import DmWebserver
from resources.deployment import LOOPBACK_HOSTS, AuditSettings, WebSettings
from resources.postgres import PostgresResource

log = logging.getLogger("dmetl.serve")

CONSOLE_PREFIX = "/console"
# builds the console's ASGI app from the server's auditor, session secret and process context;
# given by `dmetl serve` (etl_assets/cli/serve.py), so the web layer does not import the console
ConsoleFactory = Callable[[Auditor, bytes, RoleProcessContext], ASGIApp]


class ServeError(RuntimeError):
    """`dmetl serve` cannot start as asked (the message says what to change)."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 3000
    workspace: Path = Path("workspace.yaml")
    daemon: bool = True


class Router:
    """`/auth/*` to our sign-in routes, `/console` to the console, everything else to Dagster's
    webserver."""

    def __init__(self, auth_app, dagster_app, console_app=None):
        self.auth_app, self.dagster_app, self.console_app = auth_app, dagster_app, console_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] in ("http", "websocket") else ""
        if path.startswith("/auth/"):
            await self.auth_app(scope, receive, send)
        elif self.console_app is not None and (
            path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")
        ):
            await self.console_app(scope, receive, send)
        else:
            await self.dagster_app(scope, receive, send)


def check_options(web: WebSettings, options: ServeOptions) -> None:
    if web.mode == "local" and options.host not in LOOPBACK_HOSTS:
        raise ServeError(
            f"--host {options.host}: local single-user mode serves loopback only; use"
            " --host 127.0.0.1, or sign users in with DM_WEB_AUTH=oidc or proxy"
        )


def build_app(
    *,
    web: WebSettings,
    auditor: Auditor,
    process_context: RoleProcessContext,
    local_user: str,
    secure_cookies: bool = False,
    console: ConsoleFactory | None = None,
):
    """The ASGI application: sign-in middleware → (auth routes | console | Dagster's
    webserver)."""
    mapping = RoleMapping.load(web.roles_file)
    codec = SessionCodec(web.session_secret, web.session_max_age, secure=secure_cookies)
    authenticator = Authenticator(web, mapping, codec, auditor, local_user)
    oidc = None
    if web.oidc is not None:
        oidc = OidcClient(web.oidc, f"{web.public_url}/auth/callback")
    routes = AuthRoutes(
        authenticator, codec, auditor, oidc, web.proxy.logout_url if web.proxy else None
    )
    dagster_app = DmWebserver(process_context, auditor=auditor).create_asgi_app()
    console_app = console(auditor, web.session_secret, process_context) if console else None
    return SignInMiddleware(
        Router(routes.app(), dagster_app, console_app),
        authenticate=authenticator,
        auditor=auditor,
        mode=web.mode,
        public_url=web.public_url,
        login_path="/auth/login" if oidc is not None else None,
    )


class CheckpointThread(threading.Thread):
    """Signs a checkpoint of the audit log's head every `seconds` when it has moved."""

    def __init__(self, auditor: Auditor, settings: AuditSettings, store, seconds: int):
        super().__init__(name="dm-audit-checkpoints", daemon=True)
        self.auditor, self.store, self.seconds = auditor, store, seconds
        self.key = checkpoints.signing_key(settings.signing_key) if settings.signing_key else None
        self.stop = threading.Event()
        self.last = -1

    def checkpoint(self) -> None:
        if self.key is None:
            return
        seq, digest = self.auditor.head()
        if seq != self.last and seq > 0:
            checkpoints.write(self.store, self.key, seq, digest)
            self.last = seq

    def run(self) -> None:
        while not self.stop.wait(self.seconds):
            try:
                self.checkpoint()
            except Exception:  # keep serving; the next tick retries
                log.exception("could not write an audit checkpoint")


def start_daemon(workspace: Path) -> subprocess.Popen:
    """Dagster's daemon on the same workspace and instance (schedules, sensors, queued runs)."""
    exe = Path(sys.executable).with_name("dagster-daemon")
    return subprocess.Popen([str(exe), "run", "-w", str(workspace)])


def banner(web: WebSettings, options: ServeOptions, local_user: str) -> str:
    url = f"http://{options.host}:{options.port}"
    if web.mode == "local":
        return (
            f"dmetl serve: local single-user mode on {url} (loopback only):"
            f" every request is {local_user} with the admin role"
        )
    if web.mode == "oidc":
        assert web.oidc is not None
        return (
            f"dmetl serve: OIDC sign-in ({web.oidc.issuer}) on {url}, public URL {web.public_url}"
        )
    assert web.proxy is not None
    trusted = ", ".join(web.proxy.trusted)
    return f"dmetl serve: trusted-proxy sign-in on {url} (proxies: {trusted})"


def serve(
    *,
    web: WebSettings,
    audit_settings: AuditSettings,
    postgres: PostgresResource,
    instance: dg.DagsterInstance,
    options: ServeOptions,
    local_user: str,
    checkpoint_store,
    console: ConsoleFactory | None = None,
) -> None:
    """Run until interrupted: the webserver in this process, the daemon beside it."""
    check_options(web, options)
    auditor = Auditor(postgres, audit_settings.hmac_key)
    target = WorkspaceFileTarget(paths=[str(options.workspace)])
    with RoleProcessContext(instance, target, version=webserver_version) as process_context:
        app = build_app(
            web=web, auditor=auditor, process_context=process_context, local_user=local_user,
            secure_cookies=bool(web.public_url and web.public_url.startswith("https://")),
            console=console,
        )  # fmt: skip
        who = Principal(name=local_user, roles=frozenset({Role.ADMIN}), mode="local")
        auditor.record(
            who, audit.Action.SERVE_START,
            detail={"mode": web.mode, "host": options.host, "port": options.port},
        )  # fmt: skip
        cp = CheckpointThread(
            auditor, audit_settings, checkpoint_store, audit_settings.checkpoint_seconds
        )
        cp.start()
        daemon = start_daemon(options.workspace) if options.daemon else None
        print(banner(web, options, local_user), flush=True)
        try:
            uvicorn.run(app, host=options.host, port=options.port, log_level="warning")
        finally:
            cp.stop.set()
            try:
                cp.checkpoint()
            except Exception:
                log.exception("could not write the final audit checkpoint")
            if daemon is not None:
                daemon.terminate()
                try:
                    daemon.wait(20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
            auditor.close()
