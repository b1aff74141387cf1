"""Connections and access (issue 12.5): the connection registry (list, detail, create, edit:
task editors and admins), access requests with a reason (everyone signed in), and the owners'
approve/deny page. Requests and decisions are e-mailed (etl_assets/governance/notify.py).

Pages show a connection's secret *variable name* only; the value stays in the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.routing import Route

from etl_assets.console.framework import PREFIX, Ctx, forbidden, redirect, render, require
from etl_assets.governance import connections as reg
from etl_assets.governance import notify
from etl_assets.governance.connections import Actor, ConnectionSpec, GovernanceError
from etl_assets.metadata.loader import discover
from etl_assets.web.roles import Role
from resources.deployment import smtp_settings


def actor_of(ctx: Ctx) -> Actor:
    """The signed-in user as governance sees them: their e-mail (else their name) and ids."""
    p = ctx.principal
    return Actor(
        name=p.email or p.name,
        role=p.role_label,
        admin=Role.ADMIN in ctx.roles,
        ids=frozenset({p.name, *(p.owner_ids or ())} - {""}),
    )


@dataclass(frozen=True)
class Declared:
    """A connection some module's metadata declares (name, type, the modules)."""

    name: str
    types: tuple[str, ...]
    modules: tuple[str, ...]


def declared_connections(ctx: Ctx) -> dict[str, Declared]:
    found: dict[str, list[tuple[str, str]]] = {}
    for loaded in discover(ctx.services.modules_dir).modules:
        for c in loaded.model.connections:
            found.setdefault(c.name, []).append((loaded.name, c.type))
    return {
        name: Declared(name, tuple(sorted({t for _, t in uses})), tuple(m for m, _ in uses))
        for name, uses in found.items()
    }


def _status(conn, registered: reg.RegisteredConnection, actor: Actor) -> str:
    if actor.is_owner(registered.owners):
        return "owner"
    if reg.has_access(conn, registered, actor.name):
        return "granted"
    mine = reg.list_requests(conn, connection=registered.name, requester=actor.name)
    return "pending" if any(r.status == "pending" for r in mine) else "no access"


@require("published.view")
def list_page(ctx: Ctx):
    actor = actor_of(ctx)
    declared = declared_connections(ctx)
    with ctx.services.postgres.connect(autocommit=True) as conn:
        rows = [(c, _status(conn, c, actor)) for c in reg.list_connections(conn)]
    registered = {c.name for c, _ in rows}
    unregistered = [d for n, d in sorted(declared.items()) if n not in registered]
    return render(ctx, "connections.html", rows=rows, declared=declared, unregistered=unregistered)


def _spec_from_form(ctx: Ctx, name: str | None = None) -> dict:
    return {
        "name": name or ctx.field("name"),
        "type": ctx.field("type"),
        "description": ctx.field("description"),
        "contract_url": ctx.field("contract_url") or None,
        "secret_env": ctx.field("secret_env") or None,
        "owners": [o for o in ctx.field("owners").replace(",", "\n").splitlines() if o.strip()],
    }


def _form(ctx: Ctx, values: dict, *, create: bool, error: str = "", status: int = 200):
    return render(
        ctx, "connection_form.html", status, values=values, create=create, error=error,
        types=reg.TYPES,
    )  # fmt: skip


@require("connection.edit")
def new_page(ctx: Ctx):
    values = {"name": ctx.param("name"), "type": "postgres", "description": "",
              "contract_url": "", "secret_env": "", "owners": []}  # fmt: skip
    return _form(ctx, values, create=True)


@require("connection.edit")
def create(ctx: Ctx):
    values = _spec_from_form(ctx)
    try:
        spec = ConnectionSpec.parse(values)
        with ctx.services.postgres.connect(autocommit=True) as conn:
            saved = reg.save_connection(conn, spec, actor_of(ctx), create=True)
    except GovernanceError as exc:
        return _form(ctx, values, create=True, error=str(exc), status=400)
    told = _tell_owners(ctx, saved, list(saved.owners))
    return redirect(
        ctx, f"{PREFIX}/connections/{spec.name}", f"Connection {spec.name} created{told}."
    )


def _tell_owners(ctx: Ctx, saved: reg.RegisteredConnection, new_owners: list[str]) -> str:
    """E-mail people made owners; what to tell the editor about it."""
    if not new_owners:
        return ""
    sent = notify.owners_assigned(
        smtp_settings(), saved, new_owners, _link(ctx, f"{PREFIX}/access")
    )
    return f" (owners e-mailed: {', '.join(sent.recipients)})" if sent.sent else ""


def _get(ctx: Ctx, conn) -> reg.RegisteredConnection | None:
    return reg.get_connection(conn, ctx.param("name"))


@require("connection.edit")
def edit_page(ctx: Ctx):
    with ctx.services.postgres.connect(autocommit=True) as conn:
        found = _get(ctx, conn)
    if found is None:
        return render(ctx, "problem.html", 404, title="Not found", message="No such connection.")
    return _form(ctx, {**found.__dict__, "owners": list(found.owners)}, create=False)


@require("connection.edit")
def update(ctx: Ctx):
    values = _spec_from_form(ctx, ctx.param("name"))
    try:
        spec = ConnectionSpec.parse(values)
        with ctx.services.postgres.connect(autocommit=True) as conn:
            before = reg.get_connection(conn, spec.name)
            saved = reg.save_connection(conn, spec, actor_of(ctx), create=False)
    except GovernanceError as exc:
        return _form(ctx, values, create=False, error=str(exc), status=400)
    added = [o for o in saved.owners if before is None or o not in before.owners]
    told = _tell_owners(ctx, saved, added)
    return redirect(
        ctx, f"{PREFIX}/connections/{spec.name}", f"Connection {spec.name} saved{told}."
    )


@require("published.view")
def detail_page(ctx: Ctx):
    actor = actor_of(ctx)
    with ctx.services.postgres.connect(autocommit=True) as conn:
        found = _get(ctx, conn)
        if found is None:
            return render(
                ctx, "problem.html", 404, title="Not found", message="No such connection."
            )
        status = _status(conn, found, actor)
        deciding = reg.may_decide(found, actor) and ctx.may("access.decide")
        requests = reg.list_requests(
            conn, connection=found.name, requester=None if deciding else actor.name
        )
    declared = declared_connections(ctx).get(found.name)
    return render(
        ctx, "connection.html", c=found, access_state=status, requests=requests, declared=declared,
        deciding=deciding,
    )  # fmt: skip


def _link(ctx: Ctx, path: str) -> str:
    return str(ctx.request.base_url).rstrip("/") + path


@require("access.request")
def request_access(ctx: Ctx):
    name = ctx.param("name")
    actor = actor_of(ctx)
    try:
        with ctx.services.postgres.connect(autocommit=True) as conn:
            request = reg.request_access(conn, name, actor, ctx.field("reason"))
            registered = reg.get_connection(conn, name)
    except GovernanceError as exc:
        return render(ctx, "problem.html", 400, title="Request not sent", message=str(exc))
    sent = notify.request_to_owners(
        smtp_settings(), registered, request, _link(ctx, f"{PREFIX}/access")
    )
    told = f"e-mailed to {', '.join(sent.recipients)}" if sent.sent else sent.note
    return redirect(
        ctx,
        f"{PREFIX}/connections/{name}",
        f"Access request {request.id} sent to the owners of {name} ({told}).",
    )


@require("access.decide")
def access_page(ctx: Ctx):
    actor = actor_of(ctx)
    with ctx.services.postgres.connect(autocommit=True) as conn:
        owned = [c for c in reg.list_connections(conn) if reg.may_decide(c, actor)]
        names = {c.name for c in owned}
        pending = [r for r in reg.list_requests(conn, status="pending") if r.connection in names]
        decided = [
            r for r in reg.list_requests(conn) if r.connection in names and r.status != "pending"
        ][:50]
    return render(ctx, "access.html", owned=owned, pending=pending, decided=decided)


@require("access.decide")
def decide(ctx: Ctx):
    try:
        request_id = int(ctx.param("id"))
    except ValueError:
        return render(ctx, "problem.html", 404, title="Not found", message="No such request.")
    decision = ctx.field("decision")
    if decision not in ("approve", "deny"):
        return render(
            ctx, "problem.html", 400, title="No decision", message="Choose approve or deny."
        )
    actor = actor_of(ctx)
    try:
        with ctx.services.postgres.connect(autocommit=True) as conn:
            found = reg.get_request(conn, request_id)
            registered = found and reg.get_connection(conn, found.connection)
            if registered and not reg.may_decide(registered, actor):
                return forbidden(
                    ctx, "access.decide",
                    f"Only the owners of {registered.name} ({', '.join(registered.owners)})"
                    " decide its access requests.",
                )  # fmt: skip
            decided = reg.decide(conn, request_id, actor, decision == "approve", ctx.field("note"))
    except GovernanceError as exc:
        return render(ctx, "problem.html", 400, title="Not decided", message=str(exc))
    sent = notify.decision_to_requester(
        smtp_settings(), decided, _link(ctx, f"{PREFIX}/connections/{decided.connection}")
    )
    told = f"e-mailed to {', '.join(sent.recipients)}" if sent.sent else sent.note
    return redirect(
        ctx,
        f"{PREFIX}/access",
        f"Request {decided.id} of {decided.requested_by} {decided.status} ({told}).",
    )


@require("access.decide")
def revoke(ctx: Ctx):
    try:
        request_id = int(ctx.param("id"))
    except ValueError:
        return render(ctx, "problem.html", 404, title="Not found", message="No such request.")
    try:
        with ctx.services.postgres.connect(autocommit=True) as conn:
            found = reg.get_request(conn, request_id)
            registered = found and reg.get_connection(conn, found.connection)
            if registered and not reg.may_decide(registered, actor_of(ctx)):
                return forbidden(
                    ctx, "access.decide", f"Only the owners of {registered.name} revoke its grants."
                )
            revoked = reg.revoke(conn, request_id, actor_of(ctx), ctx.field("note"))
    except GovernanceError as exc:
        return render(ctx, "problem.html", 400, title="Not revoked", message=str(exc))
    sent = notify.decision_to_requester(smtp_settings(), revoked)
    told = f"e-mailed to {', '.join(sent.recipients)}" if sent.sent else sent.note
    return redirect(
        ctx, f"{PREFIX}/access", f"Grant {revoked.id} of {revoked.grantee} revoked ({told})."
    )


routes = [
    Route(f"{PREFIX}/connections", list_page, methods=["GET"]),
    Route(f"{PREFIX}/connections/new", new_page, methods=["GET"]),
    Route(f"{PREFIX}/connections/new", create, methods=["POST"]),
    Route(f"{PREFIX}/connections/{{name}}", detail_page, methods=["GET"]),
    Route(f"{PREFIX}/connections/{{name}}/edit", edit_page, methods=["GET"]),
    Route(f"{PREFIX}/connections/{{name}}/edit", update, methods=["POST"]),
    Route(f"{PREFIX}/connections/{{name}}/request", request_access, methods=["POST"]),
    Route(f"{PREFIX}/access", access_page, methods=["GET"]),
    Route(f"{PREFIX}/access/{{id}}/decide", decide, methods=["POST"]),
    Route(f"{PREFIX}/access/{{id}}/revoke", revoke, methods=["POST"]),
]
