"""An upload script: a program given the outbox version folder, which publishes it its own way.

It runs in the module folder with `DM_MODULE`, `DM_VERSION`, `DM_OUTBOX_URI` (file:// or s3://)
and, for a local outbox, `DM_OUTBOX_DIR` set, and may
print one JSON object on its last stdout line: `{"locations": {"<table>": "<where>"}}`.
A non-zero exit fails the upload; its stderr is kept in the restricted zone, not in the error.
"""

from __future__ import annotations

import json

from etl_assets.errors import ExtractionError, UploadError
from etl_assets.extract.context import BASE_ENV
from etl_assets.extract.script import run_script
from etl_assets.publish.sink import PublishReport, PublishRequest


class ScriptSink:
    """The module's upload script, given the outbox version folder."""

    def publish(self, request: PublishRequest) -> PublishReport:
        script = request.loaded.model.upload.script
        outbox, module, version = request.outbox, request.module, request.version
        extra = {
            "DM_MODULE": module,
            "DM_VERSION": version,
            "DM_OUTBOX_URI": outbox.version_uri(module, version),
        }
        if request.run_id:
            extra["DM_RUN_ID"] = request.run_id  # what a dead run's cleanup looks for
        local = outbox.local_dir(module, version)
        if local is not None:
            extra["DM_OUTBOX_DIR"] = str(local.resolve())
        env = {**request.secrets.environment((*BASE_ENV, *script.env)), **extra}
        try:
            proc = run_script(script, request.loaded.folder, env)
        except ExtractionError as exc:
            raise UploadError(
                str(exc).replace("script", "upload script", 1),
                restricted_detail=exc.restricted_detail,
            ) from None
        request.info(f"upload script {script.path} finished")
        return PublishReport(
            sink=f"script:{script.path}",
            rows={n: len(df) for n, df in request.tables.items()},
            inserted={n: len(df) for n, df in request.tables.items()},
            locations=_locations(proc.stdout),
            location=f"script {script.path}",
        )


def _locations(stdout: str) -> dict[str, str]:
    """`{"locations": {...}}` from the script's last stdout line, if it printed one."""
    lines = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    if not lines:
        return {}
    try:
        last = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {}
    if isinstance(last, dict) and isinstance(last.get("locations"), dict):
        return {str(k): str(v) for k, v in last["locations"].items()}
    return {}
