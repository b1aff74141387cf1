"""`dmetl versions`, `dmetl history` and `dmetl approve`: published versions, the metadata
behind them, and approving an upload (which then runs in this process through the instance, so
no daemon is needed; `--no-upload` leaves it to the daemon's approvals sensor)."""

from __future__ import annotations

import argparse
import getpass
import sys
import uuid

from etl_assets import history, registry
from etl_assets.cli.runs import execute, print_summary
from etl_assets.cli.session import Session
from etl_assets.console import store
from etl_assets.definitions import load_catalog
from etl_assets.metadata.loader import discover
from etl_assets.orchestration.jobs import upload_job_name


def cmd_versions(args: argparse.Namespace, session: Session) -> int:
    """Versions highest first; `*` marks the one consumers are served, expired ones say so."""
    with session.postgres.connect(autocommit=True) as conn:
        rows = registry.list_versions(conn, args.module)
    if not rows:
        print(f"{args.module}: no published version yet")
        return 0
    print(f"  {'version':<10} {'state':<9} {'published at':<26} {'rows':<40} where")
    for r in rows:
        counts = ", ".join(f"{k}={v}" for k, v in r["row_counts"].items())
        when = r["published_at"].isoformat(timespec="seconds")
        where = ", ".join(r["tables"].values()) if r["state"] == registry.PUBLISHED else "-"
        mark = "*" if r["current"] else " "
        print(f"{mark} {r['version']:<10} {r['state']:<9} {when:<26} {counts:<40} {where}")
    current = next((r["version"] for r in rows if r["current"]), None)
    if current:
        print(f"* current: {current}, the version consumers are served")
    return 0


def cmd_history(args: argparse.Namespace, session: Session) -> int:
    """Which metadata hash produced which version; with --diff, what changed between two."""
    with session.postgres.connect(autocommit=True) as conn:
        if args.diff:
            old, new = args.diff
            try:
                text = history.diff(conn, args.module, old, new, session.outbox)
            except history.HistoryError as exc:
                print(f"dmetl history: {exc}", file=sys.stderr)
                return 1
            print(text or f"{args.module} {old} and {new} were produced by the same metadata")
            return 0
        entries = history.history(conn, args.module)
    if not entries:
        print(f"{args.module}: no published version yet")
        return 0
    print(f"  {'version':<10} {'metadata hash':<18} {'state':<9} published at")
    for e in entries:
        mark = "*" if e.current else " "
        when = e.published_at.isoformat(timespec="seconds")
        print(f"{mark} {e.version:<10} {e.metadata_hash[:16]:<18} {e.state:<9} {when}")
    print()
    for rev in history.revisions(entries):
        print(f"metadata {rev.metadata_hash[:16]} produced {', '.join(rev.versions)}")
    print(f"compare two: dmetl history {args.module} --diff OLD NEW")
    return 0


def cmd_approve(args: argparse.Namespace, session: Session) -> int:
    found = discover(session.deployment.modules_dir, only=args.module)
    if args.module not in {m.name for m in found.modules}:
        print(f"no valid data module named {args.module!r}", file=sys.stderr)
        return 1
    if args.version not in session.outbox.versions(args.module):
        print(
            f"{args.module} {args.version} is not in the outbox: run its prepare job first",
            file=sys.stderr,
        )
        return 1
    by = args.by or getpass.getuser()
    with session.postgres.connect(autocommit=True) as conn:
        checks = store.latest_checks(conn, args.module, args.version)
        if checks is not None and not checks["passed"]:
            print(
                f"{args.module} {args.version}: a blocking check fails on its corrected outbox"
                f" (`dmetl outbox show {args.module} {args.version}`); correct it again first",
                file=sys.stderr,
            )
            return 1
        registry.approve(conn, args.module, args.version, by, args.comment or "")
    if args.no_upload:
        print(
            f"approved {args.module} {args.version} for upload (by {by}); the daemon's"
            f" dm_approved_uploads sensor runs {upload_job_name(args.module)} for it"
        )
        return 0
    print(f"approved {args.module} {args.version} for upload (by {by})")
    module = load_catalog(session.deployment.modules_dir, only=args.module).module(args.module)
    if module is None:
        print(f"{args.module} does not build: run `dmetl validate`", file=sys.stderr)
        return 1
    job = upload_job_name(args.module)
    summary = execute(session, module, job, args.version, str(uuid.uuid4()), trigger="approval")
    print_summary(
        summary,
        session.outbox.version_uri(args.module, args.version),
        session.outbox.restricted_uri(args.module, args.version),
    )
    return 0 if summary.success else 1
