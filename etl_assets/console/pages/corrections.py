"""Corrections (issue 12, item 3; seed 003's Manage Prepared Data): a data manager adds, edits
and deletes outbox records of a prepared version as one change set with a reason; the blocking
checks run again on the result, and the change set is audited (keys and counts, no values)."""

from __future__ import annotations

import json

from starlette.routing import Route

from etl_assets import audit
from etl_assets.console import catalog
from etl_assets.console.changes import ChangeSet, ChangeSetError, correctable_tables
from etl_assets.console.corrections import CORRECTABLE_STATES, correct
from etl_assets.console.framework import PREFIX, Ctx, problem, redirect, render, require
from etl_assets.console.outbox_view import key_text
from etl_assets.console.versions import find_version, module_versions


def _record_edit(ctx: Ctx, loaded, version: str, name: str, key: str) -> str | None:
    """A change set editing the record of table `name` whose key text is `key` (a row's Edit
    link on the review page), with its current values to change."""
    table = correctable_tables(loaded).get(name)
    if (
        table is None
        or not table.primaryKey
        or not ctx.services.outbox.has_table(loaded.name, version, name)
    ):
        return None
    df = ctx.services.outbox.read_table(loaded.name, version, name)
    hits = df[key_text(df, list(table.primaryKey)) == key]
    if len(hits) != 1:
        return None
    row = json.loads(hits.head(1).to_json(orient="records", date_format="iso"))[0]
    keys = {k: row.pop(k) for k in table.primaryKey}
    change = {"table": name, "op": "edit", "key": keys, "values": row}
    return json.dumps({"changes": [change]}, indent=2)


def _example(ctx: Ctx, loaded, version: str) -> str:
    """A change set to start from: edit the first record of the first table with a key."""
    q = ctx.request.query_params
    if q.get("table") and q.get("key"):
        found = _record_edit(ctx, loaded, version, q["table"], q["key"])
        if found:
            return found
    for name, table in correctable_tables(loaded).items():
        if table.primaryKey and ctx.services.outbox.has_table(loaded.name, version, name):
            df = ctx.services.outbox.read_table(loaded.name, version, name).head(1)
            if len(df):
                key = {k: str(df.iloc[0][k]) for k in table.primaryKey}
                column = next((c for c in df.columns if c not in key), None)
                if column:
                    value = str(df.iloc[0][column])
                    change = {"table": name, "op": "edit", "key": key, "values": {column: value}}
                    return json.dumps({"changes": [change]}, indent=2)
    return json.dumps({"changes": []}, indent=2)


def _load(ctx: Ctx):
    m = catalog.module(ctx.services.modules_dir, ctx.services.instance, ctx.param("module"))
    if m is None:
        return None, None
    with ctx.services.postgres.connect(autocommit=True) as conn:
        versions = module_versions(conn, ctx.services.instance, ctx.services.outbox, m.name)
    return m, find_version(versions, ctx.param("version"))


@require("outbox.correct")
def form(ctx: Ctx, error: str | None = None, changes: str | None = None, reason: str = ""):
    m, v = _load(ctx)
    if m is None or v is None:
        return problem(ctx, "No such version", "There is no such module or version.", 404)
    if v.state not in CORRECTABLE_STATES:
        return problem(ctx, "Cannot correct", f"{m.name} {v.version} is {v.label}: only a"
                       " version waiting for approval (or rejected) can be corrected.", 409)  # fmt: skip
    tables = {name: list(t.primaryKey or []) for name, t in correctable_tables(m.loaded).items()}
    return render(
        ctx, "corrections.html", 400 if error else 200, m=m, v=v, tables=tables, error=error,
        changes=changes or _example(ctx, m.loaded, v.version), reason=reason,
    )  # fmt: skip


@require("outbox.correct")
def submit(ctx: Ctx):
    m, v = _load(ctx)
    if m is None or v is None or v.state not in CORRECTABLE_STATES:
        return problem(ctx, "Cannot correct", "This version is not waiting for approval.", 409)
    text, reason = ctx.field("changes"), ctx.field("reason")[:500]
    target = audit.Target(module=m.name, version=v.version)
    try:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ChangeSetError(
                f"changes: not JSON (line {exc.lineno}, column {exc.colno})"
            ) from None
        changes = ChangeSet.parse(data, "changes")
        with ctx.services.postgres.connect(autocommit=True) as conn:
            result = correct(
                conn, ctx.services.outbox, m.loaded, v.version, changes, ctx.principal.name,
                reason, ctx.services.storage,
            )  # fmt: skip
    except ChangeSetError as exc:
        ctx.audit(audit.Action.OUTBOX_CORRECTION, target=target, outcome=audit.Outcome.ERROR,
                  detail={"reason": reason, "error": "the change set was refused"})  # fmt: skip
        return form.__wrapped__(ctx, error=str(exc), changes=text, reason=reason)
    ctx.audit(audit.Action.OUTBOX_CORRECTION, target=target, detail=result.audit_detail(reason))
    verdict = "all blocking checks pass" if result.passed else "a blocking check fails"
    message = f"Change set {result.change_set} applied to {m.name} {v.version}; {verdict}."
    return redirect(ctx, f"{PREFIX}/modules/{m.name}/versions/{v.version}", message)


V = f"{PREFIX}/modules/{{module}}/versions/{{version}}"
routes = [
    Route(f"{V}/corrections", form, methods=["GET"]),
    Route(f"{V}/corrections", submit, methods=["POST"]),
]
