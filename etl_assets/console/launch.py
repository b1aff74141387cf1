"""Starting and uploading versions from the console, through the instance (queued for the
daemon when one runs, launched at once when none does). Stopping is run control's
(`etl_assets.orchestration.control.stop`, which cancels through `control.cancel`), shared with
`dmetl stop` and `dmetl cancel`."""

from __future__ import annotations

import dagster as dg

from etl_assets.console.catalog import ModuleSummary
from etl_assets.execution import MODULE_TAG
from etl_assets.orchestration.jobs import triggered_job_name, upload_job_name
from etl_assets.orchestration.versions import allocate
from etl_assets.web._dagster_internals import USER_TAG, launch_job
from etl_assets.web.identity import Principal
from resources.postgres import PostgresResource

TRIGGER_TAG = "dm/trigger"


def run_tags(module: str, version: str, principal: Principal, trigger: str) -> dict[str, str]:
    return {
        "dagster/partition": version,
        MODULE_TAG: module,
        TRIGGER_TAG: trigger,
        USER_TAG: principal.name,
    }


def start_version(
    workspace, postgres: PostgresResource, summary: ModuleSummary, principal: Principal
) -> tuple[str, str]:
    """Allocate the module's next version and launch its run (prepare, or everything with
    autoUpload); (version, run id)."""
    instance: dg.DagsterInstance = workspace.instance
    version = allocate(instance, postgres, summary.loaded, trigger="console")
    job = triggered_job_name(summary.name, summary.model.autoUpload)
    run_id = launch_job(workspace, job, run_tags(summary.name, version, principal, "console"))
    return version, run_id


def start_upload(workspace, module: str, version: str, principal: Principal) -> str:
    """Launch the upload job of an approved version; the run id."""
    tags = run_tags(module, version, principal, "approval")
    return launch_job(workspace, upload_job_name(module), tags)
