"""`dmetl outbox show|edit`: review a prepared version's anonymized outbox and correct it with a
change set (the same as the console's outbox and corrections pages; see docs/console.md)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from etl_assets import audit, registry
from etl_assets.cli.session import Session
from etl_assets.console import outbox_view, store
from etl_assets.console.changes import ChangeSet, ChangeSetError, correctable_tables
from etl_assets.console.corrections import CORRECTABLE_STATES, correct
from etl_assets.console.versions import find_version, module_versions
from etl_assets.metadata.loader import discover
from resources.io_manager import ParquetIOManager


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("outbox", help="review and correct a prepared version's outbox")
    osub = p.add_subparsers(dest="outbox_command", required=True)
    c = osub.add_parser("show", help="tables and checks of a version, or one table's rows")
    c.add_argument("module")
    c.add_argument("version")
    c.add_argument("table", nargs="?")
    c.add_argument("--page", type=int, default=1, help="page of rows (25 a page)")
    c.set_defaults(fn=cmd_show)
    c = osub.add_parser("edit", help="apply a change set (JSON) to a version waiting for approval")
    c.add_argument("module")
    c.add_argument("version")
    c.add_argument("--file", required=True, help='{"changes": [{"table", "op", "key", "values"}]}')
    c.add_argument("--reason", required=True, help="why the records are corrected (audited)")
    c.add_argument("--by", help="who corrects (default: your login)")
    c.set_defaults(fn=cmd_edit)


def _loaded(session: Session, module: str):
    found = discover(session.deployment.modules_dir, only=module)
    return next((m for m in found.modules if m.name == module), None)


def _show_table(session: Session, loaded, version: str, name: str, page_no: int) -> int:
    outbox = session.outbox
    if not outbox.has_table(loaded.name, version, name):
        print(f"{loaded.name} {version} has no outbox table {name!r}", file=sys.stderr)
        return 1
    table = next(t for t in loaded.model.tables if name in t.published_names)
    df = outbox.read_table(loaded.name, version, name)
    with session.postgres.connect(autocommit=True) as conn:
        current = registry.current_version(conn, loaded.name)
    current = current if current != version else None
    old = None
    if current and outbox.has_table(loaded.name, current, name):
        old = outbox.read_table(loaded.name, current, name)
    diff = outbox_view.diff(
        df, old, list(table.primaryKey or []), current if old is not None else None
    )
    print(f"{loaded.name} {version} {name}: {len(df):,} rows (anonymized)")
    if diff.against:
        print(f"against {diff.against}: {diff.added} added, {diff.removed} removed,"
              f" {diff.changed} changed, {diff.unchanged} unchanged")  # fmt: skip
    else:
        print(diff.note)
    print(f"{'column':<20} {'type':<14} {'nulls':>6} {'distinct':>8}  min .. max")
    for c in outbox_view.column_stats(df):
        span = f"{c.minimum} .. {c.maximum}" if c.minimum else ""
        print(f"{c.name:<20} {c.type:<14} {c.nulls:>6} {c.distinct:>8}  {span}")
    page = outbox_view.page_of(df, page_no)
    print(f"\npage {page.number} of {page.pages}:")
    print(page.rows.to_string(index=False))
    return 0


def cmd_show(args: argparse.Namespace, session: Session) -> int:
    loaded = _loaded(session, args.module)
    if loaded is None:
        print(f"no valid data module named {args.module!r}", file=sys.stderr)
        return 1
    if args.table:
        return _show_table(session, loaded, args.version, args.table, args.page)
    with session.postgres.connect(autocommit=True) as conn:
        v = find_version(
            module_versions(conn, session.instance, session.outbox, loaded.name), args.version
        )
        checks = store.latest_checks(conn, loaded.name, args.version)
    if v is None:
        print(f"{loaded.name} has no version {args.version!r}", file=sys.stderr)
        return 1
    print(f"{loaded.name} {v.version}: {v.label}")
    for t in loaded.model.tables:
        for name in t.published_names:
            if session.outbox.has_table(loaded.name, v.version, name):
                print(
                    f"  {name:<24} {session.outbox.table_rows(loaded.name, v.version, name):>10,} rows"
                )
    if checks:
        print("checks on the corrected data: " + ("pass" if checks["passed"] else "FAIL"))
        for c in checks["results"]:
            print(
                f"  {'ok  ' if c['passed'] else 'FAIL'} {c['check']} ({c['table']}): {c['message']}"
            )
    return 0


def cmd_edit(args: argparse.Namespace, session: Session) -> int:
    loaded = _loaded(session, args.module)
    if loaded is None:
        print(f"no valid data module named {args.module!r}", file=sys.stderr)
        return 1
    path = Path(args.file)
    try:
        changes = ChangeSet.parse(json.loads(path.read_text()), str(path))
    except (OSError, json.JSONDecodeError) as exc:
        print(f"{path}: cannot read the change set: {exc}", file=sys.stderr)
        return 1
    except ChangeSetError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    by = args.by or getpass.getuser()
    target = audit.Target(module=loaded.name, version=args.version)
    with session.postgres.connect(autocommit=True) as conn:
        v = find_version(
            module_versions(conn, session.instance, session.outbox, loaded.name), args.version
        )
        if v is None or v.state not in CORRECTABLE_STATES:
            state = v.label if v else "not a known version"
            print(f"{loaded.name} {args.version} is {state}: only a version waiting for"
                  " approval (or rejected) can be corrected", file=sys.stderr)  # fmt: skip
            return 1
        storage = ParquetIOManager(base_dir=session.deployment.storage_root)
        try:
            result = correct(
                conn, session.outbox, loaded, v.version, changes, by, args.reason, storage
            )
        except ChangeSetError as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            return 1
    audit.record(session.postgres, actor=by, role="cli", action=audit.Action.OUTBOX_CORRECTION,
                 target=target, detail={"via": "cli", **result.audit_detail(args.reason)})  # fmt: skip
    for name, s in result.summary.items():
        print(f"{name}: {s.added} added, {s.edited} edited, {s.deleted} deleted")
    for c in result.checks:
        print(f"  {'ok  ' if c.passed else 'FAIL'} {c.check} ({c.table}): {c.message}")
    verdict = (
        "all blocking checks pass"
        if result.passed
        else "a blocking check fails: it cannot be approved"
    )
    print(f"change set {result.change_set} applied to {loaded.name} {v.version}; {verdict}")
    known = ", ".join(correctable_tables(loaded))
    if not result.passed:
        print(f"(correctable tables: {known})", file=sys.stderr)
    return 0 if result.passed else 1
