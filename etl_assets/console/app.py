"""The console's Starlette application: the routes of every page module, the static files,
and the 403/404 pages. `dmetl serve` mounts it at `/console` (etl_assets/web/server.py)."""

from __future__ import annotations

from types import ModuleType

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from etl_assets.console import framework
from etl_assets.console.framework import PREFIX, Console, ConsoleServices, Ctx
from etl_assets.console.pages import (
    audit,
    config,
    connections,
    control,
    corrections,
    home,
    modules,
    outbox,
    scripts,
)

# Every page module exports `routes: list[Route]`; add a new one here.
PAGE_MODULES: list[ModuleType] = [
    home, modules, control, outbox, corrections, audit, connections, scripts, config
]  # fmt: skip


def routes() -> list[Route | Mount]:
    collected: list[Route | Mount] = []
    for module in PAGE_MODULES:
        collected.extend(module.routes)
    static = StaticFiles(directory=str(framework.TEMPLATES.with_name("static")))
    collected.append(Mount(f"{PREFIX}/static", app=static, name="static"))
    return collected


async def _not_found(request: Request, exc: HTTPException) -> Response:
    ctx = Ctx(request, request.app.state.console)
    title = "Not found" if exc.status_code == 404 else "Not allowed"
    return framework.render(ctx, "problem.html", exc.status_code, title=title, message=exc.detail)


def build_console_app(console: Console) -> Starlette:
    app = Starlette(routes=routes(), exception_handlers={404: _not_found, 405: _not_found})
    app.state.console = console
    return app


def console_factory(services: ConsoleServices):
    """What `dmetl serve` hands the web layer: builds the app once the server has its auditor,
    session secret and Dagster process context (see `etl_assets.web.server.ConsoleFactory`)."""

    def build(auditor, secret: bytes, process_context) -> Starlette:
        return build_console_app(Console(services, auditor, secret, process_context))

    return build
