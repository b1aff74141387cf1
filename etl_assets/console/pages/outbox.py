"""Outbox review (issue 12, item 2; seed 003's View Prepared Data): per table of a prepared
version a page of its anonymized rows, column statistics, the privacy checks in words and the
difference to the current published version; and the quarantine browser, for the roles that may
see the restricted zone only."""

from __future__ import annotations

import pandas as pd
from starlette.routing import Route

from etl_assets import registry
from etl_assets.anonymize.table import verify_outbox_privacy
from etl_assets.console import catalog, outbox_view
from etl_assets.console.framework import PREFIX, Ctx, problem, render, require
from etl_assets.stages import asset_key

QUARANTINE_FILTERS = ("rule", "reason", "source", "table")


def _table_of(model, name: str):
    return next((t for t in model.tables if name in t.published_names), None)


def _current(conn, module: str, version: str) -> str | None:
    """The version consumers read now, unless it is `version` itself."""
    current = registry.current_version(conn, module)
    return current if current != version else None


def privacy_words(ctx: Ctx, loaded, table, version: str) -> list[dict]:
    """Each declared model with what it requires and what the outbox reaches, in words."""
    if table.privacy is None:
        return []
    reference = None
    if ctx.services.storage is not None:
        try:
            reference = ctx.services.storage.read(
                asset_key(loaded.name, "clean", table.name), version
            )
        except OSError:
            reference = None
    passed, message, achieved = verify_outbox_privacy(
        ctx.services.outbox, loaded, table, version, reference=reference
    )
    rows = []
    for pm in table.privacy.models:
        need = {"k-anonymity": pm.k, "l-diversity": pm.l, "t-closeness": pm.t}[pm.type]
        reached = next((v for k, v in achieved.items() if str(k).startswith(pm.type)), None)
        rows.append({"model": pm.type, "required": need, "reached": reached})
    return [{"passed": passed, "message": message, "models": rows}]


@require("outbox.correct")
def review(ctx: Ctx):
    name, version, tname = ctx.param("module"), ctx.param("version"), ctx.param("table")
    m = catalog.module(ctx.services.modules_dir, ctx.services.instance, name)
    table = _table_of(m.model, tname) if m else None
    outbox = ctx.services.outbox
    if m is None or table is None or not outbox.has_table(name, version, tname):
        return problem(
            ctx, "Not in the outbox", f"{name} {version} has no outbox table {tname!r}.", 404
        )
    df = outbox.read_table(name, version, tname)
    with ctx.services.postgres.connect(autocommit=True) as conn:
        current = _current(conn, name, version)
    old = (
        outbox.read_table(name, current, tname)
        if current and outbox.has_table(name, current, tname)
        else None
    )
    diff = outbox_view.diff(df, old, list(table.primaryKey or []), current)
    if current and old is None:
        diff = outbox_view.Diff(current, note=f"the outbox of {current} is no longer kept")
    page = outbox_view.page_of(df, ctx.page_number())
    key = list(table.primaryKey or [])
    keys = outbox_view.key_text(page.rows, key).tolist() if key and len(page.rows) else []
    return render(
        ctx, "outbox_table.html", m=m, version=version, table=tname, page=page, row_keys=keys,
        stats=outbox_view.column_stats(df),
        privacy=privacy_words(ctx, m.loaded, table, version), diff=diff, key=key,
    )  # fmt: skip


@require("restricted.view")  # roles.sees_restricted: nobody else reaches it, by URL either
def quarantine(ctx: Ctx):
    name, version = ctx.param("module"), ctx.param("version")
    q = ctx.services.outbox.read_quarantine(name, version)
    options = {
        f: sorted(q[f].dropna().unique().tolist()) if len(q) else [] for f in QUARANTINE_FILTERS
    }
    chosen = {f: ctx.request.query_params.get(f, "") for f in QUARANTINE_FILTERS}
    mask = pd.Series(True, index=q.index)
    for f, value in chosen.items():
        if value:
            mask &= q[f] == value
    shown = q[mask] if len(q) else q
    return render(
        ctx, "quarantine.html", module=name, version=version, options=options, chosen=chosen,
        page=outbox_view.page_of(shown, ctx.page_number()), total=len(q),
    )  # fmt: skip


V = f"{PREFIX}/modules/{{module}}/versions/{{version}}"
routes = [
    Route(f"{V}/outbox/{{table}}", review, methods=["GET"]),
    Route(f"{V}/quarantine", quarantine, methods=["GET"]),
]
