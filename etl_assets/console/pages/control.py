"""Process, approve, upload, reject, stop and discard versions; pause and resume modules
(issue 12, item 4; seed 003's Process ETL Task, Upload Prepared Data and Stop ETL Task)."""

from __future__ import annotations

from starlette.routing import Route

from etl_assets import audit, registry
from etl_assets.console import catalog, launch, store
from etl_assets.console.framework import PREFIX, Ctx, problem, redirect, render, require
from etl_assets.console.versions import VersionInfo, find_version, module_versions
from etl_assets.orchestration import control
from etl_assets.orchestration.versions import VersionRefused
from etl_assets.web._dagster_internals import JobNotFound

APPROVABLE = ("waiting_for_approval", "rejected")


def _module(ctx: Ctx):
    return catalog.module(ctx.services.modules_dir, ctx.services.instance, ctx.param("module"))


def _version(ctx: Ctx, conn, module: str) -> VersionInfo | None:
    versions = module_versions(conn, ctx.services.instance, ctx.services.outbox, module)
    return find_version(versions, ctx.param("version"))


def _page(module: str, version: str | None = None) -> str:
    return f"{PREFIX}/modules/{module}" + (f"/versions/{version}" if version else "")


@require("run.control")
def start(ctx: Ctx):
    m = _module(ctx)
    if m is None:
        return problem(ctx, "No such module", f"No valid data module {ctx.param('module')!r}.", 404)
    target = audit.Target(module=m.name)
    try:
        version, run_id = launch.start_version(
            ctx.workspace(), ctx.services.postgres, m, ctx.principal
        )
    except (VersionRefused, JobNotFound) as exc:
        ctx.audit(audit.Action.RUN_LAUNCH, target=target, outcome=audit.Outcome.ERROR,
                  detail={"reason": str(exc)[:200]})  # fmt: skip
        return problem(ctx, "Could not start", str(exc), 409)
    ctx.audit(
        audit.Action.RUN_LAUNCH, target=audit.Target(module=m.name, version=version, run=run_id),
        detail={"job": "prepare", "trigger": "console"},
    )  # fmt: skip
    return redirect(ctx, _page(m.name, version), f"Started {m.name} {version} (run {run_id[:8]}).")


@require("version.approve")
def approve(ctx: Ctx):
    m = _module(ctx)
    if m is None:
        return problem(ctx, "No such module", f"No valid data module {ctx.param('module')!r}.", 404)
    with ctx.services.postgres.connect(autocommit=True) as conn:
        v = _version(ctx, conn, m.name)
        if v is None or v.state not in APPROVABLE:
            state = v.label if v else "unknown"
            return problem(
                ctx, "Cannot approve", f"{m.name} {ctx.param('version')} is {state}.", 409
            )
        checks = store.latest_checks(conn, m.name, v.version)
        if checks is not None and not checks["passed"]:
            return problem(
                ctx, "Cannot approve",
                f"A blocking check fails on the corrected data of {m.name} {v.version}; correct"
                " the records again or reject the version.", 409,
            )  # fmt: skip
        comment = ctx.field("comment")[:500]
        registry.approve(conn, m.name, v.version, ctx.principal.name, comment)
    target = audit.Target(module=m.name, version=v.version)
    ctx.audit(audit.Action.APPROVAL, target=target, detail={"comment": comment})
    try:
        run_id = launch.start_upload(ctx.workspace(), m.name, v.version, ctx.principal)
    except JobNotFound as exc:
        ctx.audit(audit.Action.RUN_LAUNCH, target=target, outcome=audit.Outcome.ERROR,
                  detail={"reason": str(exc)[:200]})  # fmt: skip
        return problem(ctx, "Approved, but the upload did not start", str(exc), 409)
    ctx.audit(
        audit.Action.RUN_LAUNCH,
        target=audit.Target(module=m.name, version=v.version, run=run_id),
        detail={"job": "upload", "trigger": "approval"},
    )
    message = f"Approved {m.name} {v.version}; its upload runs (run {run_id[:8]})."
    return redirect(ctx, _page(m.name, v.version), message)


@require("version.reject")
def reject(ctx: Ctx):
    m = _module(ctx)
    reason = ctx.field("reason")[:500]
    if m is None:
        return problem(ctx, "No such module", f"No valid data module {ctx.param('module')!r}.", 404)
    if not reason:
        return problem(ctx, "A reason is needed", "Say why the version is rejected (reason).")
    with ctx.services.postgres.connect(autocommit=True) as conn:
        v = _version(ctx, conn, m.name)
        if v is None or v.state not in (*APPROVABLE, "approved"):
            return problem(ctx, "Cannot reject", f"{m.name} {ctx.param('version')} is not waiting.")
        registry.withdraw_approval(conn, m.name, v.version)
        store.record_decision(conn, m.name, v.version, "rejected", ctx.principal.name, reason)
    ctx.audit(audit.Action.REJECTION, target=audit.Target(module=m.name, version=v.version),
              detail={"reason": reason})  # fmt: skip
    return redirect(ctx, _page(m.name, v.version), f"Rejected {m.name} {v.version}.")


@require("run.control")
def stop_confirm(ctx: Ctx):
    m = _module(ctx)
    if m is None:
        return problem(ctx, "No such module", f"No valid data module {ctx.param('module')!r}.", 404)
    with ctx.services.postgres.connect(autocommit=True) as conn:
        v = _version(ctx, conn, m.name)
    if v is None:
        return problem(
            ctx, "No such version", f"{m.name} has no version {ctx.param('version')!r}.", 404
        )
    return render(ctx, "stop.html", m=m, v=v)


@require("run.control")
def stop(ctx: Ctx):
    m = _module(ctx)
    if m is None:
        return problem(ctx, "No such module", f"No valid data module {ctx.param('module')!r}.", 404)
    discard = ctx.field("outbox") == "discard"
    version = ctx.param("version")
    target = audit.Target(module=m.name, version=version)
    with ctx.services.postgres.connect(autocommit=True) as conn:
        v = _version(ctx, conn, m.name)
        if v is None or v.state in ("published", "superseded"):
            return problem(ctx, "Cannot stop", f"{m.name} {version} is not stoppable.")
        try:
            outcome = control.stop(
                ctx.services.instance, conn, m.name, v.version, ctx.principal.name,
                discard=discard, outbox=ctx.services.outbox, step_storage=ctx.services.storage,
                wait_seconds=30,
            )  # fmt: skip
        except control.ControlRefused as exc:
            ctx.audit(audit.Action.VERSION_STOP, target=target, outcome=audit.Outcome.ERROR,
                      detail={"discard": discard, "reason": str(exc)[:300]})  # fmt: skip
            return problem(ctx, "Could not stop", str(exc), 409)
        runs = [c.run_id for c in outcome.canceled]
        for run_id in runs:
            store.record_decision(conn, m.name, v.version, "stopped", ctx.principal.name,
                                  run_id=run_id)  # fmt: skip
        if outcome.discarded:
            registry.withdraw_approval(conn, m.name, v.version)
            store.record_decision(conn, m.name, v.version, "discarded", ctx.principal.name)
    ctx.audit(
        audit.Action.VERSION_STOP, target=audit.Target(module=m.name, version=v.version,
                                                       run=runs[0] if runs else None),
        detail={"discard": outcome.discarded, "canceled": runs},
    )  # fmt: skip
    what = ("Stopped" if runs else "Kept") + f" {m.name} {v.version}"
    return redirect(
        ctx, _page(m.name, v.version), what + ("; its outbox is discarded." if discard else ".")
    )


def _set_paused(ctx: Ctx, paused: bool):
    m = _module(ctx)
    if m is None:
        return problem(ctx, "No such module", f"No valid data module {ctx.param('module')!r}.", 404)
    action = audit.Action.MODULE_PAUSE if paused else audit.Action.MODULE_RESUME
    instance, workspace = ctx.services.instance, ctx.workspace()
    with ctx.services.postgres.connect(autocommit=True) as conn:
        try:
            if paused:
                changes = control.pause(instance, workspace, conn, m.name, ctx.principal.name)
            else:
                changes = control.resume(instance, workspace, conn, m.name)
        except control.ControlRefused as exc:
            ctx.audit(action, target=audit.Target(module=m.name), outcome=audit.Outcome.ERROR,
                      detail={"reason": str(exc)[:300]})  # fmt: skip
            return problem(ctx, "Cannot change the schedule", str(exc), 409)
    changed = [c.name for c in changes if c.was_running != c.running]
    ctx.audit(action, target=audit.Target(module=m.name),
              detail={"stopped" if paused else "started": changed})  # fmt: skip
    return redirect(ctx, _page(m.name), ("Paused " if paused else "Resumed ") + m.name + ".")


@require("run.control")
def pause(ctx: Ctx):
    return _set_paused(ctx, True)


@require("run.control")
def resume(ctx: Ctx):
    return _set_paused(ctx, False)


V = f"{PREFIX}/modules/{{module}}/versions/{{version}}"
routes = [
    Route(f"{PREFIX}/modules/{{module}}/start", start, methods=["POST"]),
    Route(f"{PREFIX}/modules/{{module}}/pause", pause, methods=["POST"]),
    Route(f"{PREFIX}/modules/{{module}}/resume", resume, methods=["POST"]),
    Route(f"{V}/approve", approve, methods=["POST"]),
    Route(f"{V}/reject", reject, methods=["POST"]),
    Route(f"{V}/stop", stop_confirm, methods=["GET"]),
    Route(f"{V}/stop", stop, methods=["POST"]),
]
