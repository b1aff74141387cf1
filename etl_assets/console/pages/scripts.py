"""Scripts (issue 12.6, use case Manage Scripts): every module's extraction and upload scripts
with their sha256 and released state; task editors release one (pinning its hash)."""

from __future__ import annotations

from starlette.routing import Route

from etl_assets.console.framework import PREFIX, Ctx, redirect, render, require
from etl_assets.console.pages.connections import actor_of
from etl_assets.governance.connections import GovernanceError
from etl_assets.governance.scripts import PREFIX as HASH_PREFIX
from etl_assets.governance.scripts import release_script, script_states
from etl_assets.metadata.loader import discover


@require("published.view")
def scripts_page(ctx: Ctx):
    found = discover(ctx.services.modules_dir)
    with ctx.services.postgres.connect(autocommit=True) as conn:
        modules = [(m.name, script_states(conn, m.model, m.folder)) for m in found.modules]
    return render(ctx, "scripts.html", modules=modules, hash_prefix=HASH_PREFIX)


@require("script.release")
def release(ctx: Ctx):
    module, path = ctx.param("module"), ctx.field("path")
    found = discover(ctx.services.modules_dir, only=module)
    loaded = next((m for m in found.modules if m.name == module), None)
    if loaded is None:
        return render(
            ctx, "problem.html", 404, title="Not found", message=f"No valid module {module!r}."
        )
    try:
        with ctx.services.postgres.connect(autocommit=True) as conn:
            state = release_script(conn, loaded.model, loaded.folder, path, actor_of(ctx))
    except GovernanceError as exc:
        return render(ctx, "problem.html", 400, title="Not released", message=str(exc))
    return redirect(
        ctx,
        f"{PREFIX}/scripts",
        f"Released {module} {state.path} (sha256 {state.released_sha256[:HASH_PREFIX]}…).",
    )


routes = [
    Route(f"{PREFIX}/scripts", scripts_page, methods=["GET"]),
    Route(f"{PREFIX}/modules/{{module}}/scripts/release", release, methods=["POST"]),
]
