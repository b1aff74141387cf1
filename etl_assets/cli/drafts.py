"""`dmetl draft upload|list|diff|release|discard`: metadata drafts of a module (docs/governance.md).

An uploaded file is validated as `dmetl validate` validates it and stored as a draft; releasing
a draft writes it as the module's metadata file, loaded on the code location's next reload."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from etl_assets import drafts
from etl_assets.cli.session import Session
from etl_assets.governance.connections import Actor, GovernanceError


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("draft", help="upload, list, diff and release metadata drafts")
    verbs = c.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("upload", help="validate a metadata file and store it as a draft")
    v.add_argument("module")
    v.add_argument("file", help="module.jsonld, module.json, module.yaml or module.yml")
    v.add_argument("--by")
    v.set_defaults(fn=cmd_upload)
    v = verbs.add_parser("list", help="the drafts of a module, newest first")
    v.add_argument("module")
    v.set_defaults(fn=cmd_list)
    v = verbs.add_parser("diff", help="the loaded metadata file against a draft")
    v.add_argument("module")
    v.add_argument("id", type=int)
    v.set_defaults(fn=cmd_diff)
    v = verbs.add_parser("release", help="write a draft as the module's metadata file")
    v.add_argument("module")
    v.add_argument("id", type=int)
    v.add_argument("--by")
    v.set_defaults(fn=cmd_release)
    v = verbs.add_parser("discard", help="set a draft aside without loading it")
    v.add_argument("module")
    v.add_argument("id", type=int)
    v.add_argument("--by")
    v.set_defaults(fn=cmd_discard)


def _folder(session: Session, module: str) -> Path | None:
    folder = session.deployment.modules_dir / module
    if not folder.is_dir():
        print(f"dmetl draft: no module folder {folder}", file=sys.stderr)
        return None
    return folder


def _actor(args: argparse.Namespace) -> Actor:
    return Actor(args.by or getpass.getuser(), "cli")


def cmd_upload(args: argparse.Namespace, session: Session) -> int:
    folder = _folder(session, args.module)
    if folder is None:
        return 1
    file = Path(args.file)
    with session.postgres.connect(autocommit=True) as conn:
        try:
            result, draft = drafts.save_draft(
                conn, folder, file.name, file.read_text("utf-8"), _actor(args)
            )
        except (GovernanceError, OSError, UnicodeDecodeError) as exc:
            print(f"dmetl draft upload: {exc}", file=sys.stderr)
            return 1
    for line in (*result.errors, *result.warnings):
        print(line, file=sys.stderr)
    if draft is None:
        return 1
    print(f"draft {draft.id} of {args.module} stored (metadata {result.metadata_hash[:12]});"
          f" release it with `dmetl draft release {args.module} {draft.id}`")  # fmt: skip
    return 0


def cmd_list(args: argparse.Namespace, session: Session) -> int:
    with session.postgres.connect(autocommit=True) as conn:
        rows = drafts.list_drafts(conn, args.module)
    if not rows:
        print(f"{args.module}: no drafts")
    for d in rows:
        when = d.uploaded_at.isoformat(timespec="seconds")
        print(f"{d.id:>5}  {d.status:<9} {d.filename:<14} {d.uploaded_by:<28} {when}")
    return 0


def cmd_diff(args: argparse.Namespace, session: Session) -> int:
    folder = _folder(session, args.module)
    with session.postgres.connect(autocommit=True) as conn:
        draft = drafts.get_draft(conn, args.id)
    if folder is None or draft is None or draft.module != args.module:
        print(f"dmetl draft diff: no draft {args.id} of {args.module!r}", file=sys.stderr)
        return 1
    print(drafts.draft_diff(folder, draft) or "(no difference)", end="")
    return 0


def cmd_release(args: argparse.Namespace, session: Session) -> int:
    folder = _folder(session, args.module)
    if folder is None:
        return 1
    with session.postgres.connect(autocommit=True) as conn:
        try:
            draft = drafts.release_draft(conn, folder, args.id, _actor(args))
        except GovernanceError as exc:
            print(f"dmetl draft release: {exc}", file=sys.stderr)
            return 1
    print(
        f"released draft {draft.id} as {folder / draft.filename}; reload the code location"
        " (Dagster UI: Deployment → Reload) to load it"
    )
    return 0


def cmd_discard(args: argparse.Namespace, session: Session) -> int:
    with session.postgres.connect(autocommit=True) as conn:
        try:
            draft = drafts.discard_draft(conn, args.module, args.id, _actor(args))
        except GovernanceError as exc:
            print(f"dmetl draft discard: {exc}", file=sys.stderr)
            return 1
    print(f"discarded draft {draft.id} of {args.module}")
    return 0
