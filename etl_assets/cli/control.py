"""`dmetl pause|resume|skip|cancel|retry|stop`: run control from the command line, audited.

Each command does what the UI's toggles and buttons do (etl_assets/orchestration/control.py), on
the deployment's instance; those that need the code location (schedules, sensors, the job to
re-execute) load the workspace file `dmetl serve` uses. Every attempt, refused ones too, is an
audit event whose actor is the OS account running `dmetl` (role `cli`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from contextlib import ExitStack

from etl_assets import audit
from etl_assets._dagster_private import workspace_from_file
from etl_assets.cli.session import Session
from etl_assets.orchestration import control
from resources.deployment import PROJECT_ROOT, local_user_name
from resources.io_manager import IO_MANAGER_KEY

CLI_ROLE = "cli"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    def command(name: str, help: str, fn: Callable, *args: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        for arg in args:
            c.add_argument(arg)
        c.add_argument(
            "--workspace", "-w", default=str(PROJECT_ROOT / "workspace.yaml"),
            help="the workspace file of the code location (default: the project's)",
        )  # fmt: skip
        c.set_defaults(fn=fn)
        return c

    command("pause", "stop a module's schedules and sensors", cmd_pause, "module")
    command("resume", "start again what `dmetl pause` stopped", cmd_resume, "module")
    command("skip", "skip a module's next scheduled tick (recorded)", cmd_skip, "module")
    c = command("cancel", "cancel a queued run or terminate a started one", cmd_cancel, "run")
    c.add_argument("--force", action="store_true", help="mark it canceled if nothing can stop it")
    command(
        "retry", "re-execute a version's failed run from failure", cmd_retry, "module", "version"
    )
    c = command("stop", "cancel a version's active runs", cmd_stop, "module", "version")
    c.add_argument(
        "--discard", action="store_true",
        help="also delete its outbox folders, quarantine and step storage (never a published one)",
    )  # fmt: skip


def _audit(session: Session, action: audit.Action, target: audit.Target, outcome, detail) -> None:
    audit.record(
        session.postgres, actor=local_user_name(), role=CLI_ROLE, action=action,
        target=target, outcome=outcome, detail=detail,
    )  # fmt: skip


def _run(
    args: argparse.Namespace,
    session: Session,
    action: audit.Action,
    target: audit.Target,
    work: Callable[[ExitStack], tuple[dict, list[str]]],
) -> int:
    """Do `work` (which returns the audit detail and the lines to print), audit how it ended;
    a `run` in the detail (the run an operation started) becomes the event's target run."""
    try:
        with ExitStack() as stack:
            detail, lines = work(stack)
        if detail.get("run"):
            target = dataclasses.replace(target, run=detail["run"])
    except control.ControlRefused as exc:
        _audit(session, action, target, audit.Outcome.ERROR, {"reason": str(exc)})
        print(f"dmetl {args.command}: {exc}", file=sys.stderr)
        return 1
    _audit(session, action, target, audit.Outcome.OK, detail)
    print("\n".join(lines))
    return 0


def _workspace(stack: ExitStack, args: argparse.Namespace, session: Session):
    if getattr(args, "modules_dir", None):
        print(
            "note: the code location is loaded from the workspace file, which reads"
            " DM_MODULES_DIR; --modules-dir does not apply to it",
            file=sys.stderr,
        )
    workspace = stack.enter_context(workspace_from_file(session.instance, args.workspace))
    for error in workspace.code_location_errors():
        print(f"note: a code location did not load: {error.message.strip()}", file=sys.stderr)
    return workspace


def _changes(changes: list[control.InstigatorChange]) -> list[str]:
    return [
        f"  {c.kind:<8} {c.name:<40} {'running' if c.running else 'stopped'}"
        + ("" if c.running != c.was_running else " (unchanged)")
        for c in changes
    ]


def cmd_pause(args: argparse.Namespace, session: Session) -> int:
    def work(stack):
        ws = _workspace(stack, args, session)
        with session.postgres.connect(autocommit=True) as conn:
            changes = control.pause(session.instance, ws, conn, args.module, local_user_name())
        stopped = [c.name for c in changes if c.was_running]
        return {"stopped": stopped}, [f"paused {args.module}:", *_changes(changes)]

    return _run(args, session, audit.Action.MODULE_PAUSE, audit.Target(module=args.module), work)


def cmd_resume(args: argparse.Namespace, session: Session) -> int:
    def work(stack):
        ws = _workspace(stack, args, session)
        with session.postgres.connect(autocommit=True) as conn:
            changes = control.resume(session.instance, ws, conn, args.module)
        started = [c.name for c in changes if c.running and not c.was_running]
        return {"started": started}, [f"resumed {args.module}:", *_changes(changes)]

    return _run(args, session, audit.Action.MODULE_RESUME, audit.Target(module=args.module), work)


def cmd_skip(args: argparse.Namespace, session: Session) -> int:
    def work(stack):
        ws = _workspace(stack, args, session)
        with session.postgres.connect(autocommit=True) as conn:
            req = control.skip_next_tick(ws, conn, args.module, local_user_name())
        when = req.tick.isoformat(timespec="minutes") if req.tick else "the next tick"
        return {"pending": req.pending, "tick": req.tick.isoformat() if req.tick else None}, [
            f"{args.module}: the scheduled tick at {when} will be skipped"
            + (f" ({req.pending} skip requests pending: one tick each)" if req.pending > 1 else "")
        ]

    return _run(args, session, audit.Action.TICK_SKIP, audit.Target(module=args.module), work)


def cmd_cancel(args: argparse.Namespace, session: Session) -> int:
    run = session.instance.get_run_by_id(args.run)
    target = audit.Target(
        module=run.tags.get("dm/module") if run else None,
        version=run.tags.get("dagster/partition") if run else None,
        run=args.run,
    )

    def work(stack):
        outcome = control.cancel(session.instance, args.run, force=args.force)
        return (
            {"force": args.force, "status_before": outcome.status_before},
            [f"run {outcome.run_id}: {outcome.message} (was {outcome.status_before.lower()})"],
        )

    return _run(args, session, audit.Action.RUN_CANCEL, target, work)


def cmd_retry(args: argparse.Namespace, session: Session) -> int:
    target = audit.Target(module=args.module, version=args.version)

    def work(stack):
        ws = _workspace(stack, args, session)
        with session.postgres.connect(autocommit=True) as conn:
            out = control.retry(session.instance, ws, conn, args.module, args.version)
        state = session.instance.get_run_by_id(out.run_id).status.value.lower()
        return {"parent_run": out.parent_run_id, "run": out.run_id, "steps": len(out.steps)}, [
            f"{args.module} {args.version}: run {out.run_id} re-executes run"
            f" {out.parent_run_id} from failure ({len(out.steps)} steps; {state})",
            *(f"  {step}" for step in out.steps),
        ]

    return _run(args, session, audit.Action.RUN_RETRY, target, work)


def cmd_stop(args: argparse.Namespace, session: Session) -> int:
    target = audit.Target(module=args.module, version=args.version)

    def work(stack):
        with session.postgres.connect(autocommit=True) as conn:
            out = control.stop(
                session.instance, conn, args.module, args.version, local_user_name(),
                discard=args.discard, outbox=session.outbox,
                step_storage=session._ready(IO_MANAGER_KEY) if args.discard else None,
            )  # fmt: skip
        lines = [f"run {c.run_id}: {c.message}" for c in out.canceled]
        lines.append(
            f"{args.module} {args.version}: {len(out.canceled)} active runs canceled"
            + ("; discarded (outbox, quarantine and step storage deleted)" if out.discarded else "")
        )
        detail = {"canceled": [c.run_id for c in out.canceled], "discard": out.discarded}
        return detail, lines

    return _run(args, session, audit.Action.VERSION_STOP, target, work)
