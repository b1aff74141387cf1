"""Config history and metadata drafts (issue 12.7): which metadata (canonical hash) produced
each published version, the module's drafts, the upload form (validated as `dmetl validate`
validates, errors shown as it prints them) and a draft's diff and release (task editors)."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Route

from etl_assets import drafts, history
from etl_assets.console.framework import PREFIX, Ctx, redirect, render, require
from etl_assets.console.pages.connections import actor_of
from etl_assets.governance.connections import GovernanceError
from etl_assets.metadata.loader import METADATA_FILES, is_module_folder


def _folder(ctx: Ctx) -> Path | None:
    name = ctx.param("module")
    folder = ctx.services.modules_dir / name
    ok = name.replace("_", "a").isalnum() and is_module_folder(folder)
    return folder if ok else None


def _not_found(ctx: Ctx):
    return render(ctx, "problem.html", 404, title="Not found", message="No such module.")


def _version_diff(ctx: Ctx, conn, module: str) -> tuple[str, str, str | None, str]:
    """(old, new, diff or None when not asked, problem) from the `old` and `new` parameters."""
    old, new = ctx.param("old"), ctx.param("new")
    if not (old and new):
        return old, new, None, ""
    try:
        text = history.diff(conn, module, old, new, ctx.services.outbox)
    except history.HistoryError as exc:
        return old, new, None, str(exc)
    return old, new, text, ""


def _page(ctx: Ctx, folder: Path, status: int = 200, **form):
    with ctx.services.postgres.connect(autocommit=True) as conn:
        entries = history.history(conn, folder.name)
        old, new, diff, problem = _version_diff(ctx, conn, folder.name)
        module_drafts = drafts.list_drafts(conn, folder.name)
    filename, _ = drafts.current_text(folder)
    values = {"filename": form.pop("filename", filename), "text": form.pop("text", "")}
    return render(
        ctx, "config.html", status, module=folder.name, current=filename, entries=entries,
        old=old, new=new, diff=diff, problem=problem,
        drafts=module_drafts, files=METADATA_FILES, values=values,
        errors=form.pop("errors", ()), warnings=form.pop("warnings", ()),
    )  # fmt: skip


@require("published.view")
def config_page(ctx: Ctx):
    folder = _folder(ctx)
    return _not_found(ctx) if folder is None else _page(ctx, folder)


@require("module.edit")
def upload(ctx: Ctx):
    folder = _folder(ctx)
    if folder is None:
        return _not_found(ctx)
    filename, text = ctx.field("filename"), ctx.form.get("text", [""])[0]
    try:
        with ctx.services.postgres.connect(autocommit=True) as conn:
            result, draft = drafts.save_draft(conn, folder, filename, text, actor_of(ctx))
    except GovernanceError as exc:
        return _page(ctx, folder, 400, filename=filename, text=text, errors=(str(exc),))
    if draft is None:
        return _page(
            ctx, folder, 400, filename=filename, text=text, errors=result.errors,
            warnings=result.warnings,
        )  # fmt: skip
    return redirect(
        ctx,
        f"{PREFIX}/modules/{folder.name}/drafts/{draft.id}",
        f"Draft {draft.id} stored; it is not loaded until a task editor releases it.",
    )


def _draft(ctx: Ctx, folder: Path) -> drafts.Draft | None:
    try:
        draft_id = int(ctx.param("id"))
    except ValueError:
        return None
    with ctx.services.postgres.connect(autocommit=True) as conn:
        draft = drafts.get_draft(conn, draft_id)
    return draft if draft is not None and draft.module == folder.name else None


@require("published.view")
def draft_page(ctx: Ctx):
    folder = _folder(ctx)
    draft = folder and _draft(ctx, folder)
    if folder is None or draft is None:
        return _not_found(ctx)
    return render(
        ctx, "draft.html", module=folder.name, draft=draft, diff=drafts.draft_diff(folder, draft)
    )


@require("module.edit")
def release(ctx: Ctx):
    folder = _folder(ctx)
    draft = folder and _draft(ctx, folder)
    if folder is None or draft is None:
        return _not_found(ctx)
    try:
        with ctx.services.postgres.connect(autocommit=True) as conn:
            drafts.release_draft(conn, folder, draft.id, actor_of(ctx))
    except GovernanceError as exc:
        return render(ctx, "problem.html", 400, title="Draft not released", message=str(exc))
    return redirect(
        ctx,
        f"{PREFIX}/modules/{folder.name}/config",
        f"Draft {draft.id} released as {draft.filename}; reload the code location to load it.",
    )


@require("module.edit")
def discard(ctx: Ctx):
    folder = _folder(ctx)
    draft = folder and _draft(ctx, folder)
    if folder is None or draft is None:
        return _not_found(ctx)
    try:
        with ctx.services.postgres.connect(autocommit=True) as conn:
            drafts.discard_draft(conn, folder.name, draft.id, actor_of(ctx))
    except GovernanceError as exc:
        return render(ctx, "problem.html", 400, title="Draft not discarded", message=str(exc))
    return redirect(ctx, f"{PREFIX}/modules/{folder.name}/config", f"Draft {draft.id} discarded.")


routes = [
    Route(f"{PREFIX}/modules/{{module}}/config", config_page, methods=["GET"]),
    Route(f"{PREFIX}/modules/{{module}}/drafts", upload, methods=["POST"]),
    Route(f"{PREFIX}/modules/{{module}}/drafts/{{id}}", draft_page, methods=["GET"]),
    Route(f"{PREFIX}/modules/{{module}}/drafts/{{id}}/release", release, methods=["POST"]),
    Route(f"{PREFIX}/modules/{{module}}/drafts/{{id}}/discard", discard, methods=["POST"]),
]
