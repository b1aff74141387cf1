"""`dmetl audit list|show|verify|checkpoint`: read and check the tamper-evident audit log."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from etl_assets import audit
from etl_assets.audit import checkpoints
from etl_assets.cli.serve import checkpoint_store
from etl_assets.cli.session import Session
from resources.deployment import DeploymentError, audit_settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("audit", help="list, show and verify the audit log")
    verbs = c.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("list", help="the newest events, filtered")
    v.add_argument("--module")
    v.add_argument("--user")
    v.add_argument("--action", help="e.g. graphql.mutation, auth.sign_in, run.launch")
    v.add_argument("--since", help="ISO date or time, e.g. 2026-01-31 or 2026-01-31T12:00")
    v.add_argument("--limit", type=int, default=50)
    v.set_defaults(fn=cmd_list)
    v = verbs.add_parser("show", help="one event in full")
    v.add_argument("id", type=int)
    v.set_defaults(fn=cmd_show)
    v = verbs.add_parser("verify", help="check the chain and the signed checkpoints")
    v.set_defaults(fn=cmd_verify)
    v = verbs.add_parser("checkpoint", help="sign a checkpoint of the log's head now")
    v.set_defaults(fn=cmd_checkpoint)


def _since(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(
            f"dmetl audit list: --since {text!r}: expected an ISO date or time"
        ) from None
    return when if when.tzinfo else when.astimezone()


def cmd_list(args: argparse.Namespace, session: Session) -> int:
    with session.postgres.connect(autocommit=True) as conn:
        rows = audit.query(
            conn, module=args.module, user=args.user, action=args.action,
            since=_since(args.since), limit=args.limit,
        )  # fmt: skip
    for r in reversed(rows):
        target = "/".join(x for x in (r["module"], r["version"], r["run_id"]) if x) or "-"
        detail = json.loads(r["body"]).get("detail", {})
        what = detail.get("operation", "")
        print(
            f"{r['seq']:>7}  {r['at'].isoformat(timespec='seconds')}  {r['actor']:<24}"
            f" {r['role']:<14} {r['action']:<18} {r['outcome']:<7} {target}  {what}"
        )
    return 0


def cmd_show(args: argparse.Namespace, session: Session) -> int:
    with session.postgres.connect(autocommit=True) as conn:
        row = audit.get(conn, args.id)
    if row is None:
        print(f"dmetl audit show: no event {args.id}", file=sys.stderr)
        return 1
    event = json.loads(row["body"])
    print(json.dumps({"seq": row["seq"], **event, "hash": bytes(row["hash"]).hex()}, indent=2))
    return 0


def _keys(session: Session):
    settings = audit_settings(session.deployment)
    public = None
    if settings.verify_key:
        public = checkpoints.verify_key(settings.verify_key)
    elif settings.signing_key:
        public = checkpoints.signing_key(settings.signing_key).public_key()
    return settings, public


def cmd_verify(args: argparse.Namespace, session: Session) -> int:
    try:
        settings, public = _keys(session)
    except (DeploymentError, checkpoints.CheckpointKeyError) as exc:
        print(f"dmetl audit verify: {exc}", file=sys.stderr)
        return 2
    store = checkpoint_store(session, settings.checkpoints)
    with session.postgres.connect(autocommit=True) as conn:
        verdict = audit.verify(conn, settings.hmac_key, store, public)
    for note in verdict.notes:
        print(f"note: {note}", file=sys.stderr)
    if verdict.ok:
        print(
            f"audit log intact: {verdict.last_seq} events, {verdict.checkpoints} signed"
            f" checkpoints in {settings.checkpoints}"
        )
        return 0
    print(f"audit log TAMPERED at {verdict.problem}", file=sys.stderr)
    return 1


def cmd_checkpoint(args: argparse.Namespace, session: Session) -> int:
    try:
        settings, _ = _keys(session)
        if settings.signing_key is None:
            raise DeploymentError("signing a checkpoint needs DM_AUDIT_SIGNING_KEY")
        key = checkpoints.signing_key(settings.signing_key)
    except (DeploymentError, checkpoints.CheckpointKeyError) as exc:
        print(f"dmetl audit checkpoint: {exc}", file=sys.stderr)
        return 2
    with session.postgres.connect(autocommit=True) as conn:
        seq, digest = audit.head(conn)
    if seq == 0:
        print("the audit log is empty: nothing to checkpoint")
        return 0
    where = checkpoints.write(checkpoint_store(session, settings.checkpoints), key, seq, digest)
    print(f"checkpoint of event {seq} signed (key {checkpoints.public_hex(key)[:16]}…): {where}")
    return 0
