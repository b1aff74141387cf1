"""The console's base, in process (no browser): the guard refuses a role without the action
with a 403 page, a POST without this user's CSRF token is refused, and both are audited."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from etl_assets.console import app as console_app
from etl_assets.console.framework import (
    Console,
    ConsoleServices,
    Ctx,
    csrf_token,
    redirect,
    require,
)
from etl_assets.definitions import build_definitions
from etl_assets.web.auditing import Auditor
from etl_assets.web.context import PRINCIPAL_KEY
from etl_assets.web.identity import Principal
from etl_assets.web.roles import Role
from resources.deployment import AuditSettings, Deployment
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource
from tests.conftest import EXAMPLES

SECRET = b"console-test-secret"


@require("version.approve")
def _approve(ctx: Ctx):
    return redirect(ctx, "/console/", "approved")


def _with_principal(app, principal: Principal):
    async def asgi(scope, receive, send):
        scope[PRINCIPAL_KEY] = principal
        await app(scope, receive, send)

    return asgi


@pytest.fixture
def console(tmp_path, pg_url, monkeypatch):
    monkeypatch.setattr(
        console_app, "routes",
        lambda original=console_app.routes: [
            *original(), Route("/console/test-approve", _approve, methods=["POST"])],
    )  # fmt: skip
    services = ConsoleServices(
        instance=dg.DagsterInstance.ephemeral(),
        postgres=PostgresResource(url=pg_url),
        outbox=OutboxResource(root=str(tmp_path / "outbox")),
        modules_dir=tmp_path,
        audit_settings=AuditSettings(hmac_key=b"k"),
    )
    auditor = Auditor(PostgresResource(url=pg_url), b"k")
    yield console_app.build_console_app(Console(services, auditor, SECRET)), pg_url
    auditor.close()


def client(app, role: Role) -> TestClient:
    who = Principal(name=f"{role.value}@example.org", roles=frozenset({role}), mode="oidc")
    return TestClient(_with_principal(app, who), base_url="http://127.0.0.1")


def test_home_names_the_user_and_links_by_role(console):
    app, _ = console
    page = client(app, Role.VIEWER).get("/console/")
    assert page.status_code == 200
    assert "viewer@example.org" in page.text
    assert "Audit log" not in page.text  # a viewer may not see the audit log
    assert "Audit log" in client(app, Role.TASK_MANAGER).get("/console/").text


def test_guard_and_csrf(console):
    app, pg_url = console
    manager = Principal(name="task_manager@example.org", roles=frozenset({Role.TASK_MANAGER}))
    token = csrf_token(SECRET, manager, None)
    viewer = client(app, Role.VIEWER)
    refused = viewer.post("/console/test-approve", data={"csrf": "x"})
    assert refused.status_code == 403
    c = client(app, Role.TASK_MANAGER)
    assert c.post("/console/test-approve", data={"comment": "ok"}).status_code == 403
    assert c.post("/console/test-approve", data={"csrf": token + "x"}).status_code == 403
    done = c.post("/console/test-approve", data={"csrf": token}, follow_redirects=False)
    assert done.status_code == 303
    assert 'role="status">approved<' in c.get(done.headers["location"]).text
    forged = c.get("/console/?done=Your+account+is+locked&sig=0").text
    assert "Your account is locked" not in forged  # only the console's own messages show
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT actor, outcome, body::jsonb #>> '{detail,action}' FROM dm_audit.events"
            " WHERE action = 'console.refused' ORDER BY seq"
        ).fetchall()
    assert [r[1] for r in rows] == ["denied"] * 3
    assert {r[2] for r in rows} == {"csrf"}  # the viewer's form had no valid token either


def test_every_asset_links_to_its_module_console_page(tmp_path):
    env = {"DAGSTER_HOME": str(tmp_path), "DM_WEB_PUBLIC_URL": "https://etl.example.org/"}
    defs, _ = build_definitions(EXAMPLES, Deployment.from_environ(env))
    with dg.instance_for_test():
        graph = defs.resolve_asset_graph()
    links = {key: graph.get(key).metadata.get("dm/console") for key in graph.get_all_asset_keys()}
    assert links and all(isinstance(v, dg.UrlMetadataValue) for v in links.values())
    wards = links[dg.AssetKey(["clinic", "outbox", "wards"])]
    assert wards.url == "https://etl.example.org/console/modules/clinic"
