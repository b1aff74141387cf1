"""`dmetl connection list`: the connection registry beside what module metadata declares, with
the grants each module's owners hold (read-only; the console creates, edits and decides)."""

from __future__ import annotations

import argparse

from etl_assets.cli.session import Session
from etl_assets.governance import connections as reg
from etl_assets.governance.gate import evaluate
from etl_assets.metadata.loader import discover


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("connection", help="the connection registry and what modules declare")
    verbs = c.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("list", help="registered connections, and each module's gate result")
    v.set_defaults(fn=cmd_list)


def cmd_list(args: argparse.Namespace, session: Session) -> int:
    found = discover(session.deployment.modules_dir)
    declared: dict[str, list[str]] = {}
    for loaded in found.modules:
        for c in loaded.model.connections:
            declared.setdefault(c.name, []).append(loaded.name)
    with session.postgres.connect(autocommit=True) as conn:
        registered = reg.list_connections(conn)
        gates = [evaluate(conn, loaded) for loaded in found.modules]
    print(f"{'connection':<24} {'type':<10} {'secret variable':<24} {'owners':<40} used by")
    for c in registered:
        print(
            f"{c.name:<24} {c.type:<10} {c.secret_env or '-':<24} {', '.join(c.owners):<40}"
            f" {', '.join(declared.get(c.name, [])) or '-'}"
        )
    for name in sorted(set(declared) - {c.name for c in registered}):
        print(f"{name:<24} {'(not registered)':<75} {', '.join(declared[name])}")
    state = "enforced" if session.deployment.governance else "not enforced (DM_GOVERNANCE)"
    print(f"\nrun-start gate: {state}")
    for gate in gates:
        print(f"  {gate.module}: {'may run' if gate.ok else 'refused'}")
        for problem in gate.problems:
            print(f"    - {problem}")
    return 0
