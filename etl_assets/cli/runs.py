"""`dmetl run` and `dmetl demo`: run a module's version end to end and report what happened."""

from __future__ import annotations

import argparse
import sys
import uuid
from dataclasses import dataclass, field

import dagster as dg

from etl_assets.cli.console import StepFailure, dmetl_console, masked_output, print_failures
from etl_assets.cli.session import Session
from etl_assets.connections import secret_names
from etl_assets.definitions import BuiltModule, load_catalog
from etl_assets.failures import root_cause
from etl_assets.orchestration.jobs import prepare_job_name, triggered_job_name
from etl_assets.orchestration.versions import VersionRefused, allocate
from etl_assets.results import CleanCounts, StageResultMissing, UploadCounts
from etl_assets.run_worker import RunWorker, fail_dead_runs


@dataclass
class TableSummary:
    clean: CleanCounts | None = None
    upload: UploadCounts | None = None
    published_as: str | None = None

    @property
    def anonymized(self) -> int | None:
        """Records removed by anonymization (suppressed, and children of suppressed parents)."""
        if self.clean is None or self.upload is None:
            return None
        return self.clean.rows_out - self.upload.published_rows


@dataclass
class RunSummary:
    module: str
    version: str
    run_id: str
    success: bool
    tables: dict[str, TableSummary] = field(default_factory=dict)
    failures: list[StepFailure] = field(default_factory=list)
    prepared_only: bool = False
    """the run prepared the version for approval (autoUpload off): the next step is approve"""


def summarize(result: dg.ExecuteInProcessResult, module: BuiltModule, version: str) -> RunSummary:
    """Rows extracted / rejected / published per table, from the run's materializations."""
    summary = RunSummary(module.name, version, result.run_id, result.success)
    mats: dict[tuple[str, str], dict] = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            mats[(mat.asset_key.path[1], mat.asset_key.path[2])] = dict(mat.metadata)
        elif event.is_step_failure:
            summary.failures.append(StepFailure(event.step_key or "?", root_cause(event)))
    for t in module.definitions.loaded.model.tables:
        row = TableSummary()
        try:
            row.clean = CleanCounts.from_metadata(mats.get(("clean", t.name), {}))
        except StageResultMissing:
            pass
        up = mats.get(("upload", t.name), {})
        try:
            row.upload = UploadCounts.from_metadata(up)
        except StageResultMissing:
            pass
        row.published_as = getattr(up.get("dm/published_as"), "value", None)
        summary.tables[t.name] = row
    return summary


def _n(v: int | None) -> str:
    return "-" if v is None else f"{int(v):,}"


def print_summary(summary: RunSummary, outbox_uri: str, quarantine_uri: str) -> None:
    """Per table: rows extracted, rejected by rules, merged duplicates, removed by
    anonymization (suppressed records and their children) and published."""
    state = "succeeded" if summary.success else "FAILED"
    print(f"\n{summary.module} {summary.version}: {state} (run {summary.run_id})")
    print(
        f"  {'table':<12} {'extracted':>9} {'rejected':>9} {'dupes':>6} {'anonymized':>10}"
        f" {'published':>9}  published as"
    )
    for name, t in summary.tables.items():
        c = t.clean
        print(
            f"  {name:<12} {_n(c and c.rows_extracted):>9} {_n(c and c.rejected):>9}"
            f" {_n(c and c.duplicates):>6} {_n(t.anonymized):>10}"
            f" {_n(t.upload and t.upload.published_rows):>9}  {t.published_as or '-'}"
        )
    print(f"  outbox:     {outbox_uri}")
    print(f"  quarantine: {quarantine_uri}/quarantine  (restricted zone)")
    if summary.success and summary.prepared_only:
        print(
            f"  next:       review the outbox, then approve the upload:"
            f" dmetl approve {summary.module} {summary.version}"
        )


def run_module(session: Session, module: BuiltModule, version: str | None = None) -> RunSummary:
    """Allocate a version of `module` (or take the one asked for) and materialize it."""
    instance = session.instance
    for dead in fail_dead_runs(instance):  # killed earlier, with no daemon to notice
        print(f"note: run {dead} was started but its process is gone: marked failed")
    loaded = module.definitions.loaded
    run_id = str(uuid.uuid4())
    version = allocate(
        instance, session.postgres, loaded, trigger="cli", version=version, run_id=run_id
    )
    job = triggered_job_name(module.name, loaded.model.autoUpload)
    return execute(session, module, job, version, run_id, trigger="cli")


def execute(
    session: Session, module: BuiltModule, job: str, version: str, run_id: str, trigger: str
) -> RunSummary:
    """Run `job` of `module` for `version` in this process, recorded on the instance."""
    instance = session.instance
    print(f"==> {module.name} {version}: running {job} (DAGSTER_HOME={instance.root_directory})")
    defs = dg.Definitions(
        assets=module.definitions.assets,
        asset_checks=module.definitions.checks,
        jobs=module.definitions.jobs,
        resources=session.resources,
        loggers={"console": dmetl_console},
    )
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        partition_key=version,
        run_id=run_id,
        raise_on_error=False,
        # the run's process is this one: run monitoring marks the run failed if it is killed;
        # the daemon cannot re-execute an in-process run (no code location), so no run retry
        tags={
            "dm/module": module.name,
            "dm/trigger": trigger,
            "dagster/max_retries": "0",
            **RunWorker.current().tag(),
        },
        # configuring it makes Dagster use the job's `console` (dmetl_console), not its own
        run_config={"loggers": {"console": {"config": {}}}},
    )
    summary = summarize(result, module, version)
    summary.prepared_only = job == prepare_job_name(module.name)
    if not summary.success:
        print_failures(summary.failures, summary.run_id, instance)
    return summary


def cmd_run(args: argparse.Namespace, session: Session) -> int:
    catalog = load_catalog(session.deployment.modules_dir, only=args.module)
    module = catalog.module(args.module)
    if module is None:
        errors = [str(e) for e in catalog.errors]
        print("\n".join(errors) or f"no valid data module named {args.module!r}", file=sys.stderr)
        return 1
    with masked_output(module_masker(session, module)):
        try:
            summary = run_module(session, module, args.version)
        except VersionRefused as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 1
        print_summary(
            summary,
            session.outbox.version_uri(args.module, summary.version),
            session.outbox.restricted_uri(args.module, summary.version),
        )
    return 0 if summary.success else 1


def module_masker(session: Session, module: BuiltModule):
    """Masks the secrets a run of `module` uses in what `dmetl` prints."""
    secrets = session.resources["secrets"]
    return secrets.masker(secret_names(module.definitions.loaded.model))


def cmd_demo(args: argparse.Namespace, session: Session) -> int:
    """Run every valid example module end to end and say where to look."""
    catalog = load_catalog(session.deployment.modules_dir)
    for error in catalog.errors:
        print(error, file=sys.stderr)
    ok = not catalog.errors
    for module in catalog.modules:
        with masked_output(module_masker(session, module)):
            summary = run_module(session, module)
            print_summary(
                summary,
                session.outbox.version_uri(module.name, summary.version),
                session.outbox.restricted_uri(module.name, summary.version),
            )
        ok &= summary.success
    print("\nWhere to look:")
    home = session.deployment.dagster_home
    print(f"  Dagster instance: {home} — open the UI with `make ui` (http://127.0.0.1:3000)")
    print(f"  PostgreSQL:       {session.postgres.display_url}  (registry: dm_registry.versions)")
    print("  Versions:         .venv/bin/dmetl versions <module>")
    return 0 if ok else 1
