"""`dmetl validate` and `dmetl new`: check module metadata, scaffold a new module."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from etl_assets.cli.session import Session
from etl_assets.definitions import BuiltModule, load_catalog
from etl_assets.metadata import NAME_PATTERN
from etl_assets.metadata.loader import display_path, is_module_folder

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "module"


def describe(module: BuiltModule) -> str:
    loaded = module.definitions.loaded
    m = loaded.model
    return (
        f"{len(m.tables)} tables, {len(m.collection)} sources, version {m.version},"
        f" metadata {loaded.hash[:12]}"
    )


def cmd_validate(args: argparse.Namespace, session: Session) -> int:
    """The same loading and building as the code location, so both agree on every module."""
    path = Path(args.path) if args.path else session.deployment.modules_dir
    if path.is_file():
        path = path.parent
    single = is_module_folder(path)
    catalog = load_catalog(path.parent if single else path, only=path.name if single else None)
    for module in catalog.modules:
        print(f"ok  {module.name}  {describe(module)}")
        for warning in module.loaded.warnings:
            print(f"warning: {warning.render(display_path(module.loaded.file))}", file=sys.stderr)
    for error in catalog.errors:
        print(error, file=sys.stderr)
    if not catalog.modules and not catalog.errors:
        print(f"no data modules under {path}", file=sys.stderr)
        return 1
    return 1 if catalog.errors else 0


def cmd_new(args: argparse.Namespace, session: Session) -> int:
    if not re.match(NAME_PATTERN, args.name):
        print(f"module name {args.name!r}: use lower-case letters, digits and _", file=sys.stderr)
        return 2
    target = Path(args.dir or session.deployment.modules_dir) / args.name
    if target.exists():
        print(f"{target} already exists", file=sys.stderr)
        return 1
    shutil.copytree(TEMPLATE, target)
    meta = target / "module.yaml"
    meta.write_text(meta.read_text("utf-8").replace("__NAME__", args.name), "utf-8")
    print(
        f"created {target}/ — edit module.yaml, then `dmetl validate {target}`"
        f" and `dmetl run {args.name}`"
    )
    return 0
