"""An upload script: a program given the outbox version folder, which publishes it its own way.

It runs in the module folder with `DM_MODULE`, `DM_VERSION`, `DM_OUTBOX_URI` (file:// or s3://)
and, for a local outbox, `DM_OUTBOX_DIR` set, and may
print one JSON object on its last stdout line: `{"locations": {"<table>": "<where>"}}`.
A non-zero exit fails the upload with the tail of its stderr.
"""

from __future__ import annotations

import json

import pandas as pd

from etl_assets.errors import ExtractionError, UploadError
from etl_assets.extract.script import run_script


def publish_with_script(
    loaded, version: str, tables: dict[str, pd.DataFrame], *, outbox, log=None, **_
):
    from etl_assets.publishing import PublishReport

    script = loaded.model.upload.script
    env = {
        "DM_MODULE": loaded.name,
        "DM_VERSION": version,
        "DM_OUTBOX_URI": outbox.version_uri(loaded.name, version),
    }
    local = outbox.local_dir(loaded.name, version)
    if local is not None:
        env["DM_OUTBOX_DIR"] = str(local.resolve())
    try:
        proc = run_script(script, loaded.folder, env)
    except ExtractionError as exc:
        raise UploadError(str(exc).replace("script", "upload script", 1)) from None
    locations: dict[str, str] = {}
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    if lines:
        try:
            last = json.loads(lines[-1])
        except json.JSONDecodeError:
            last = None
        if isinstance(last, dict) and isinstance(last.get("locations"), dict):
            locations = {str(k): str(v) for k, v in last["locations"].items()}
    if log:
        log.info(f"upload script {script.path} finished")
    return PublishReport(
        sink=f"script:{script.path}",
        rows={n: len(df) for n, df in tables.items()},
        inserted={n: len(df) for n, df in tables.items()},
        locations=locations,
    )
