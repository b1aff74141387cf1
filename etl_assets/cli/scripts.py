"""`dmetl script list|release`: a module's scripts, their sha256 and released state; releasing
pins a script's current hash (audited), which governed runs then require (docs/governance.md)."""

from __future__ import annotations

import argparse
import getpass
import sys

from etl_assets.cli.session import Session
from etl_assets.governance.connections import Actor, GovernanceError
from etl_assets.governance.scripts import PREFIX, release_script, script_states
from etl_assets.metadata.loader import LoadedModule, discover


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("script", help="list and release a module's extraction and upload scripts")
    verbs = c.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("list", help="each script with its sha256 and released state")
    v.add_argument("module")
    v.set_defaults(fn=cmd_list)
    v = verbs.add_parser("release", help="pin a script's current sha256 as released")
    v.add_argument("module")
    v.add_argument("script", help="its path as the metadata names it, e.g. scripts/export.py")
    v.add_argument("--by", help="who releases it (default: the user running dmetl)")
    v.set_defaults(fn=cmd_release)


def _module(session: Session, name: str) -> LoadedModule | None:
    found = discover(session.deployment.modules_dir, only=name)
    loaded = next((m for m in found.modules if m.name == name), None)
    if loaded is None:
        print(f"dmetl script: no valid data module named {name!r}", file=sys.stderr)
        for error in found.errors:
            print(error, file=sys.stderr)
    return loaded


def cmd_list(args: argparse.Namespace, session: Session) -> int:
    loaded = _module(session, args.module)
    if loaded is None:
        return 1
    with session.postgres.connect(autocommit=True) as conn:
        states = script_states(conn, loaded.model, loaded.folder)
    if not states:
        print(f"{args.module}: no scripts (only built-in connectors and sinks)")
        return 0
    print(f"{'script':<32} {'state':<11} {'sha256':<14} {'released by / at':<44} used by")
    for s in states:
        released = (
            f"{s.released_by} {s.released_at.isoformat(timespec='seconds')}"
            if s.released_at
            else "-"
        )
        print(
            f"{s.path:<32} {s.state:<11} {(s.sha256 or '-')[:PREFIX]:<14} {released:<44}"
            f" {', '.join(s.script.uses)}"
        )
    return 0


def cmd_release(args: argparse.Namespace, session: Session) -> int:
    loaded = _module(session, args.module)
    if loaded is None:
        return 1
    actor = Actor(args.by or getpass.getuser(), "cli")
    with session.postgres.connect(autocommit=True) as conn:
        try:
            state = release_script(conn, loaded.model, loaded.folder, args.script, actor)
        except GovernanceError as exc:
            print(f"dmetl script release: {exc}", file=sys.stderr)
            return 1
    print(
        f"released {args.module} {state.path} (sha256 {state.released_sha256[:PREFIX]}…)"
        f" by {state.released_by}"
    )
    return 0
