"""Modules and versions (issue 12, item 1): every module with its status, automation, owners,
connections and scripts; per module its versions with state, run, who triggered it and when."""

from __future__ import annotations

from starlette.routing import Route

from etl_assets import registry
from etl_assets.console import catalog, store
from etl_assets.console.framework import PREFIX, Ctx, problem, render, require
from etl_assets.console.versions import find_version, module_versions

LOCATION = "datamodule_etl"


def dagster_links(module: str) -> dict[str, str]:
    return {
        "assets": f"/assets/{module}",
        "prepare_job": f"/locations/{LOCATION}/jobs/{module}_prepare_job",
        "upload_job": f"/locations/{LOCATION}/jobs/{module}_upload_job",
    }


@require("published.view")
def module_list(ctx: Ctx):
    summaries, errors = catalog.modules(ctx.services.modules_dir, ctx.services.instance)
    with ctx.services.postgres.connect(autocommit=True) as conn:
        current = {s.name: registry.current_row_counts(conn, s.name) for s in summaries}
    current = {name: found[0] for name, found in current.items() if found}
    return render(ctx, "modules.html", modules=summaries, errors=errors, current=current)


def load_module(ctx: Ctx):
    name = ctx.param("module")
    summary = catalog.module(ctx.services.modules_dir, ctx.services.instance, name)
    return name, summary


@require("published.view")
def module_page(ctx: Ctx):
    name, summary = load_module(ctx)
    if summary is None:
        return problem(ctx, "No such module", f"There is no valid data module named {name!r}.", 404)
    with ctx.services.postgres.connect(autocommit=True) as conn:
        versions = module_versions(conn, ctx.services.instance, ctx.services.outbox, name)
    return render(ctx, "module.html", m=summary, versions=versions, links=dagster_links(name))


@require("published.view")
def version_page(ctx: Ctx):
    name, summary = load_module(ctx)
    version = ctx.param("version")
    if summary is None:
        return problem(ctx, "No such module", f"There is no valid data module named {name!r}.", 404)
    outbox = ctx.services.outbox
    with ctx.services.postgres.connect(autocommit=True) as conn:
        versions = module_versions(conn, ctx.services.instance, outbox, name)
        v = find_version(versions, version)
        if v is None:
            return problem(ctx, "No such version", f"{name} has no version {version!r}.", 404)
        history = store.change_sets(conn, name, version)
        checks = store.latest_checks(conn, name, version)
    tables = []
    if v.in_outbox:
        for t in summary.model.tables:
            for published in t.published_names:
                if outbox.has_table(name, version, published):
                    tables.append((published, outbox.table_rows(name, version, published)))
    return render(
        ctx, "version.html", m=summary, v=v, tables=tables, links=dagster_links(name),
        history=history, checks=checks,
    )  # fmt: skip


WAITING = ("waiting_for_approval", "rejected", "approved", "uploading")


@require("published.view")
def outbox_list(ctx: Ctx):
    """Seed 003's Outbox section: every prepared version not yet published, across modules."""
    summaries, _ = catalog.modules(ctx.services.modules_dir, ctx.services.instance)
    outbox, prepared = ctx.services.outbox, []
    with ctx.services.postgres.connect(autocommit=True) as conn:
        for m in summaries:
            for v in module_versions(conn, ctx.services.instance, outbox, m.name):
                if v.state in WAITING and v.in_outbox:
                    rows = {
                        name: outbox.table_rows(m.name, v.version, name)
                        for t in m.model.tables
                        for name in t.published_names
                        if outbox.has_table(m.name, v.version, name)
                    }
                    prepared.append((m, v, rows))
    return render(ctx, "outbox.html", prepared=prepared)


routes = [
    Route(f"{PREFIX}/outbox", outbox_list, methods=["GET"]),
    Route(f"{PREFIX}/modules", module_list, methods=["GET"]),
    Route(f"{PREFIX}/modules/{{module}}", module_page, methods=["GET"]),
    Route(f"{PREFIX}/modules/{{module}}/versions/{{version}}", version_page, methods=["GET"]),
]
