"""`dmetl`: validate, scaffold, run and inspect data modules from the command line."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from etl_assets.errors import MetadataError
from etl_assets.settings import PROJECT_ROOT, dagster_home

TEMPLATE = Path(__file__).parent / "templates" / "module"


def _ensure_instance_home() -> Path:
    """DAGSTER_HOME with the project's dagster.yaml, so CLI runs show up in `make ui`."""
    home = dagster_home()
    os.environ["DAGSTER_HOME"] = str(home.resolve())
    target = home / "dagster.yaml"
    source = PROJECT_ROOT / "dagster.yaml"
    if not target.exists() and source.exists():
        shutil.copyfile(source, target)
    return home


def cmd_validate(args: argparse.Namespace) -> int:
    from etl_assets.loader import discover, find_metadata_file, load_module

    path = Path(args.path) if args.path else None
    if path is not None and (path.is_file() or (path.is_dir() and _is_module(path))):
        try:
            loaded = load_module(path)
        except MetadataError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"ok  {loaded.name}  {_describe(loaded)}  ({find_metadata_file(loaded.folder)})")
        return 0
    found = discover(path)
    for loaded in found.modules:
        print(f"ok  {loaded.name}  {_describe(loaded)}")
    for error in found.errors:
        print(error, file=sys.stderr)
    if not found.modules and not found.errors:
        print(f"no data modules under {path or 'datamodules/'}", file=sys.stderr)
        return 1
    return 1 if found.errors else 0


def _is_module(path: Path) -> bool:
    from etl_assets.loader import METADATA_FILES

    return any((path / n).is_file() for n in METADATA_FILES)


def _describe(loaded) -> str:
    m = loaded.model
    return (
        f"{len(m.tables)} tables, {len(m.collection)} sources, version {m.version},"
        f" metadata {loaded.hash[:12]}"
    )


def cmd_new(args: argparse.Namespace) -> int:
    import re

    if not re.match(r"^[a-z][a-z0-9_]{0,62}$", args.name):
        print(f"module name {args.name!r}: use lower-case letters, digits and _", file=sys.stderr)
        return 2
    from etl_assets.loader import default_modules_dir

    target = Path(args.dir or default_modules_dir()) / args.name
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


def run_module(name: str, version: str | None = None, quiet: bool = False) -> dict:
    """Add the next version partition of `name` and materialize its whole graph."""
    _ensure_instance_home()
    import dagster as dg

    from etl_assets.definitions import build_definitions
    from etl_assets.factory import job_name, prepare_job_name
    from etl_assets.versions import next_version, partitions_def_name

    defs, found = build_definitions()
    loaded = next((m for m in found.modules if m.name == name), None)
    if loaded is None:
        errors = [str(e) for e in found.errors if f"/{name}/" in e.file or e.file.startswith(name)]
        raise SystemExit("\n".join(errors) or f"no valid data module named {name!r}")
    instance = dg.DagsterInstance.get()
    pname = partitions_def_name(name)
    existing = instance.get_dynamic_partitions(pname)
    version = version or next_version(loaded.model.version, existing)
    if version not in existing:
        instance.add_dynamic_partitions(pname, [version])
    job = job_name(name) if loaded.model.autoUpload else prepare_job_name(name)
    print(f"==> {name} {version}: running {job} (DAGSTER_HOME={instance.root_directory})")
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        partition_key=version,
        raise_on_error=False,
        tags={"dm/module": name, "dm/trigger": "cli"},
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )
    summary = summarize(result, loaded, version)
    summary["success"] = result.success
    summary["run_id"] = result.run_id
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                err = event.step_failure_data.error
                print(
                    f"  step {event.step_key} failed: {err.message.strip() if err else ''}",
                    file=sys.stderr,
                )
    return summary


def summarize(result, loaded, version: str) -> dict:
    """rows extracted / rejected / published per table, from the run's materializations."""
    from etl_assets.anonymization import published_tables

    md: dict[tuple[str, str], dict] = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            path = mat.asset_key.path
            md[(path[1], path[2])] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    tables = {}
    for t in loaded.model.tables:
        clean = md.get(("clean", t.name), {})
        up = md.get(("upload", t.name), {})
        tables[t.name] = {
            "extracted": clean.get("dm/rows_extracted"),
            "rejected": clean.get("dm/rejected_total"),
            "duplicates": clean.get("dm/duplicates"),
            "clean": clean.get("dm/rows_out"),
            "published": up.get("dagster/row_count"),
            "published_as": up.get("dm/published_as"),
            "published_names": published_tables(t),
        }
    return {"module": loaded.name, "version": version, "tables": tables}


def _n(v) -> str:
    return "-" if v is None else f"{int(v):,}"


def print_summary(summary: dict, outbox_dir: str) -> None:
    """Per table: rows extracted, rejected by rules, merged duplicates, removed by
    anonymization (suppressed records and their children) and published."""
    state = "succeeded" if summary["success"] else "FAILED"
    print(f"\n{summary['module']} {summary['version']}: {state} (run {summary['run_id']})")
    print(
        f"  {'table':<12} {'extracted':>9} {'rejected':>9} {'dupes':>6} {'anonymized':>10}"
        f" {'published':>9}  published as"
    )
    for name, t in summary["tables"].items():
        gone = None
        if t["clean"] is not None and t["published"] is not None:
            gone = int(t["clean"]) - int(t["published"])
        print(
            f"  {name:<12} {_n(t['extracted']):>9} {_n(t['rejected']):>9}"
            f" {_n(t['duplicates']):>6} {_n(gone):>10} {_n(t['published']):>9}"
            f"  {t['published_as'] or '-'}"
        )
    print(f"  outbox:     {outbox_dir}")
    print(f"  quarantine: {outbox_dir}/quarantine")


def cmd_run(args: argparse.Namespace) -> int:
    from resources.outbox import OutboxResource

    summary = run_module(args.module, args.version)
    print_summary(summary, OutboxResource().version_uri(args.module, summary["version"]))
    return 0 if summary["success"] else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Run every valid example module end to end and say where to look."""
    from etl_assets.loader import discover
    from resources.outbox import OutboxResource
    from resources.postgres import PostgresResource

    home = _ensure_instance_home()
    found = discover()
    for error in found.errors:
        print(error, file=sys.stderr)
    ok = True
    for loaded in found.modules:
        summary = run_module(loaded.name)
        print_summary(summary, OutboxResource().version_uri(loaded.name, summary["version"]))
        ok &= summary["success"]
    pg = PostgresResource(url=os.environ.get("DM_POSTGRES_URL") or None)
    print("\nWhere to look:")
    print(
        f"  Dagster instance: {home.resolve()} — open the UI with `make ui` (http://127.0.0.1:3000)"
    )
    print(f"  PostgreSQL:       {pg.display_url}  (registry: dm_registry.versions)")
    print("  Versions:         .venv/bin/dmetl versions <module>")
    return 0 if ok else 1


def cmd_versions(args: argparse.Namespace) -> int:
    from etl_assets.sinks.postgres import list_versions
    from resources.postgres import PostgresResource

    pg = PostgresResource(url=os.environ.get("DM_POSTGRES_URL") or None)
    with pg.connect(autocommit=True) as conn:
        rows = list_versions(conn, args.module)
    if not rows:
        print(f"{args.module}: no published version yet")
        return 0
    print(f"{'version':<10} {'published at':<26} {'rows':<40} where")
    for r in rows:
        counts = ", ".join(f"{k}={v}" for k, v in r["row_counts"].items())
        print(
            f"{r['version']:<10} {r['published_at'].isoformat(timespec='seconds'):<26} {counts:<40} {r['location']}"
        )
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from etl_assets.loader import discover
    from etl_assets.publishing import approve
    from resources.outbox import OutboxResource
    from resources.postgres import PostgresResource

    if args.module not in {m.name for m in discover().modules}:
        print(f"no valid data module named {args.module!r}", file=sys.stderr)
        return 1
    if args.version not in OutboxResource().versions(args.module):
        print(
            f"{args.module} {args.version} is not in the outbox: run its prepare job first",
            file=sys.stderr,
        )
        return 1
    by = args.by or os.environ.get("USER") or "unknown"
    approve(
        PostgresResource(url=os.environ.get("DM_POSTGRES_URL") or None),
        args.module,
        args.version,
        by,
        args.comment or "",
    )
    print(
        f"approved {args.module} {args.version} for upload (by {by});"
        f" run the {args.module}_upload_job for partition {args.version}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dmetl", description=__doc__)
    parser.add_argument(
        "--modules-dir", help="folder of data modules (default: $DM_MODULES_DIR or ./datamodules)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="check module metadata (a folder, a file, or all modules)")
    p.add_argument("path", nargs="?")
    p.set_defaults(fn=cmd_validate)
    p = sub.add_parser("new", help="scaffold a new module folder that validates and runs")
    p.add_argument("name")
    p.add_argument("--dir", help="where to create it (default: the modules folder)")
    p.set_defaults(fn=cmd_new)
    p = sub.add_parser("run", help="add the next version partition and materialize it")
    p.add_argument("module")
    p.add_argument("--version", help="a specific version (default: the next patch version)")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("versions", help="list the published versions of a module")
    p.add_argument("module")
    p.set_defaults(fn=cmd_versions)
    p = sub.add_parser("approve", help="approve the upload of a prepared version")
    p.add_argument("module")
    p.add_argument("version")
    p.add_argument("--by")
    p.add_argument("--comment")
    p.set_defaults(fn=cmd_approve)
    p = sub.add_parser("demo", help="run every module end to end and say where to look")
    p.set_defaults(fn=cmd_demo)
    args = parser.parse_args(argv)
    if args.modules_dir:
        os.environ["DM_MODULES_DIR"] = args.modules_dir
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
