"""Run history and the audit log (issue 12, item 8; seed 003's View Run History and Audit):
the log searchable and filterable by module, user, action and time, each entry's detail, the
verification of the chain, and the runs of every module with what they processed."""

from __future__ import annotations

import datetime as dt
import json
import math

import dagster as dg
from starlette.routing import Route

from etl_assets import audit
from etl_assets.audit import checkpoints
from etl_assets.console.framework import PREFIX, Ctx, problem, render, require
from etl_assets.console.versions import PARTITION_TAG
from etl_assets.execution import MODULE_TAG

PAGE = 50


def _time(text: str) -> dt.datetime | None:
    """A date or date-time from a filter field (UTC unless it says otherwise)."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@require("audit.view")
def audit_list(ctx: Ctx):
    q = ctx.request.query_params
    filters = {
        k: q.get(k, "").strip() for k in ("module", "user", "action", "since", "until", "text")
    }
    bad = [k for k in ("since", "until") if filters[k] and _time(filters[k]) is None]
    page = ctx.page_number()
    with ctx.services.postgres.connect(autocommit=True) as conn:
        rows, total = audit.search(
            conn, module=filters["module"] or None, user=filters["user"] or None,
            action=filters["action"] or None, since=_time(filters["since"]),
            until=_time(filters["until"]), text=filters["text"] or None,
            limit=PAGE, offset=(page - 1) * PAGE,
        )  # fmt: skip
        choices = {c: audit.distinct_values(conn, c) for c in ("actor", "action", "module")}
    pages = max(1, math.ceil(total / PAGE))
    return render(
        ctx, "audit.html", rows=rows, total=total, filters=filters, choices=choices,
        page=page, pages=pages, bad=bad,
    )  # fmt: skip


@require("audit.view")
def audit_entry(ctx: Ctx):
    try:
        seq = int(ctx.param("seq"))
    except ValueError:
        return problem(ctx, "No such entry", "An audit entry is named by its number.", 404)
    with ctx.services.postgres.connect(autocommit=True) as conn:
        row = audit.get(conn, seq)
    if row is None:
        return problem(ctx, "No such entry", f"The audit log has no entry {seq}.", 404)
    body = json.loads(row["body"])
    return render(
        ctx, "audit_entry.html", seq=seq, at=row["at"], body=body,
        pretty=json.dumps(body, indent=2, sort_keys=True),
        hash=bytes(row["hash"]).hex(), prev=bytes(row["prev_hash"]).hex(),
    )  # fmt: skip


@require("audit.view")
def audit_verify(ctx: Ctx):
    settings = ctx.services.audit_settings
    public = None
    if settings.verify_key:
        public = checkpoints.verify_key(settings.verify_key)
    elif settings.signing_key:
        public = checkpoints.signing_key(settings.signing_key).public_key()
    with ctx.services.postgres.connect(autocommit=True) as conn:
        verdict = audit.verify(conn, settings.hmac_key, ctx.services.checkpoint_store, public)
    return render(ctx, "audit_verify.html", verdict=verdict)


def _row_counts(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, int | None]]:
    """Rows per asset the run materialized (dagster/row_count: counts, never values)."""
    out = []
    for record in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1000
    ).records:
        mat = record.event_log_entry.asset_materialization
        if mat is None:
            continue
        count = mat.metadata.get("dagster/row_count")
        out.append((mat.asset_key.to_user_string(), getattr(count, "value", None)))
    return sorted(out)


@require("audit.view")
def run_list(ctx: Ctx):
    module = ctx.request.query_params.get("module", "")
    tags = {MODULE_TAG: module} if module else {}
    filters = dg.RunsFilter(tags=tags) if tags else None
    records = ctx.services.instance.get_run_records(filters=filters, limit=200)
    runs = [
        {
            "id": r.dagster_run.run_id,
            "job": r.dagster_run.job_name,
            "module": r.dagster_run.tags.get(MODULE_TAG, ""),
            "version": r.dagster_run.tags.get(PARTITION_TAG, ""),
            "status": r.dagster_run.status.value,
            "created": r.create_timestamp,
            "by": r.dagster_run.tags.get("user") or r.dagster_run.tags.get("dm/trigger", ""),
        }
        for r in records
    ]
    return render(ctx, "runs.html", runs=runs, module=module)


@require("audit.view")
def run_detail(ctx: Ctx):
    run_id = ctx.param("run_id")
    record = next(
        iter(ctx.services.instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))), None
    )
    if record is None:
        return problem(ctx, "No such run", f"The instance has no run {run_id!r}.", 404)
    with ctx.services.postgres.connect(autocommit=True) as conn:
        events, _ = audit.search(conn, text=run_id, limit=100)
    run = record.dagster_run
    return render(
        ctx, "run.html", run=run, record=record, counts=_row_counts(ctx.services.instance, run_id),
        events=events, module=run.tags.get(MODULE_TAG, ""), version=run.tags.get(PARTITION_TAG, ""),
    )  # fmt: skip


routes = [
    Route(f"{PREFIX}/audit", audit_list, methods=["GET"]),
    Route(f"{PREFIX}/audit/verify", audit_verify, methods=["GET"]),
    Route(f"{PREFIX}/audit/{{seq}}", audit_entry, methods=["GET"]),
    Route(f"{PREFIX}/runs", run_list, methods=["GET"]),
    Route(f"{PREFIX}/runs/{{run_id}}", run_detail, methods=["GET"]),
]
