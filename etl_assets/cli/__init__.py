"""`dmetl`: validate, scaffold, run and inspect data modules from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from etl_assets.cli import audit as audit_cli
from etl_assets.cli import connections as connections_cli
from etl_assets.cli import control as control_cli
from etl_assets.cli import drafts as drafts_cli
from etl_assets.cli import outbox as outbox_cli
from etl_assets.cli import scripts as scripts_cli
from etl_assets.cli import serve as serve_cli
from etl_assets.cli.modules import cmd_new, cmd_validate
from etl_assets.cli.runs import cmd_demo, cmd_run
from etl_assets.cli.session import Session
from etl_assets.cli.versions import cmd_approve, cmd_history, cmd_versions
from resources.deployment import DeploymentError, configure_arrow, current


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dmetl", description=__doc__)
    p.add_argument(
        "--modules-dir", help="folder of data modules (default: $DM_MODULES_DIR or ./datamodules)"
    )
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("validate", help="check module metadata (a folder, a file, or all modules)")
    c.add_argument("path", nargs="?")
    c.set_defaults(fn=cmd_validate)
    c = sub.add_parser("new", help="scaffold a new module folder that validates and runs")
    c.add_argument("name")
    c.add_argument("--dir", help="where to create it (default: the modules folder)")
    c.set_defaults(fn=cmd_new)
    c = sub.add_parser("run", help="allocate the next version and materialize it")
    c.add_argument("module")
    c.add_argument("--version", help="a specific version (default: the next patch version)")
    c.set_defaults(fn=cmd_run)
    c = sub.add_parser("versions", help="list the published versions of a module")
    c.add_argument("module")
    c.set_defaults(fn=cmd_versions)
    c = sub.add_parser("history", help="which metadata produced which version, and diffs")
    c.add_argument("module")
    c.add_argument("--diff", nargs=2, metavar=("OLD", "NEW"), help="compare two versions' metadata")
    c.set_defaults(fn=cmd_history)
    c = sub.add_parser("approve", help="approve a prepared version and run its upload")
    c.add_argument("module")
    c.add_argument("version")
    c.add_argument("--by")
    c.add_argument("--comment")
    c.add_argument(
        "--no-upload", action="store_true",
        help="only record the approval (the daemon's approvals sensor uploads it)",
    )  # fmt: skip
    c.set_defaults(fn=cmd_approve)
    c = sub.add_parser("demo", help="run every module end to end and say where to look")
    c.set_defaults(fn=cmd_demo)
    serve_cli.add_parser(sub)
    audit_cli.add_parser(sub)
    scripts_cli.add_parser(sub)
    connections_cli.add_parser(sub)
    drafts_cli.add_parser(sub)
    outbox_cli.add_parser(sub)
    control_cli.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        deployment = current()
        if args.modules_dir:
            deployment = dataclasses.replace(deployment, modules_dir=Path(args.modules_dir))
        session = Session(deployment)
    except DeploymentError as exc:
        print(f"dmetl: {exc}", file=sys.stderr)
        return 2
    configure_arrow()
    return args.fn(args, session)


if __name__ == "__main__":
    sys.exit(main())
