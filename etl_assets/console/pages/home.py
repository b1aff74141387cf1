"""The console's start page: what the signed-in user may do here, and where."""

from __future__ import annotations

from starlette.routing import Route

from etl_assets.console.framework import PREFIX, Ctx, render, require


@require("published.view")
def home(ctx: Ctx):
    return render(ctx, "home.html")


routes = [Route(f"{PREFIX}", home, methods=["GET"]), Route(f"{PREFIX}/", home, methods=["GET"])]
