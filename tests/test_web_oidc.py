"""OIDC sign-in against a real provider on loopback: the whole authorization-code flow with PKCE,
roles from the `groups` claim through the mapping file, expiry, forged cookies and sign-out."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from oidc_provider_mock import User

from etl_assets.web.identity import Principal
from etl_assets.web.roles import Role
from etl_assets.web.sessions import SESSION_COOKIE, SessionCodec
from tests.helpers import scratch_database
from tests.oidc_idp import oidc_provider
from tests.web_helpers import dmetl_serve, gql, serve_env

pytestmark = pytest.mark.integration
SECRET = "web-test-session-secret"
ROLES_FILE = """groups:
  etl-ops: [task_manager]
  privacy-office: [data_manager]
default: [viewer]
"""


@pytest.fixture(scope="module")
def idp():
    users = [
        User(sub="ana", claims={"email": "ana@example.org", "groups": ["etl-ops"]}),
        User(sub="bob", claims={"email": "bob@example.org", "groups": ["somewhere-else"]}),
    ]
    with oidc_provider(users) as provider:
        yield provider


@pytest.fixture(scope="module")
def served(idp, tmp_path_factory, pg_server_url, request):
    tmp = tmp_path_factory.mktemp("oidc")
    pg_url = scratch_database(request, pg_server_url, "dmtest_oidc")
    (tmp / "roles.yaml").write_text(ROLES_FILE)
    (tmp / "datamodules").mkdir()
    from tests.servers import free_port

    port = free_port()
    env = serve_env(
        tmp, tmp / "datamodules", pg_url,
        DM_WEB_AUTH="oidc", DM_OIDC_ISSUER=idp[0], DM_OIDC_CLIENT_ID="dmetl",
        DM_OIDC_CLIENT_SECRET="client-secret", DM_WEB_ROLES_FILE=str(tmp / "roles.yaml"),
        DM_WEB_PUBLIC_URL=f"http://127.0.0.1:{port}", DM_WEB_SESSION_MAX_AGE="3600",
    )  # fmt: skip
    with dmetl_serve(tmp, env, port=port) as s:
        s.pg_url = pg_url  # type: ignore[attr-defined]
        yield s


def sign_in(served, sub: str) -> tuple[httpx.Client, httpx.Response]:
    """A browser-like client through the whole flow; returns it and the callback's answer."""
    client = httpx.Client(timeout=30)
    page = client.get(f"{served.url}/assets", headers={"Accept": "text/html"})
    assert page.status_code == 302 and page.headers["location"] == "/auth/login?next=/assets"
    to_idp = client.get(f"{served.url}{page.headers['location']}")
    assert to_idp.status_code == 302
    authorize = to_idp.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert query["redirect_uri"] == [f"{served.url}/auth/callback"] and "nonce" in query
    back = client.post(authorize, data={"sub": sub})
    assert back.status_code == 302 and back.headers["location"].startswith(
        f"{served.url}/auth/callback"
    )
    return client, client.get(back.headers["location"])


def test_sign_in_with_pkce_roles_from_claims_and_sign_out(served, idp):
    client, callback = sign_in(served, "ana")
    assert callback.status_code == 302 and callback.headers["location"] == "/assets"
    cookie = callback.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Max-Age=3600" in cookie
    me = client.get(f"{served.url}/auth/whoami").json()
    assert me["name"] == "ana@example.org" and me["roles"] == ["task_manager", "viewer"]
    status, payload = gql(served, "{ permissions { permission value } }", headers={})
    assert status == 401  # not signed in without the cookie
    resp = client.post(f"{served.url}/graphql", json={"query": "{ permissions { permission value } }"},
                       headers={"Origin": served.url})  # fmt: skip
    perms = {p["permission"]: p["value"] for p in resp.json()["data"]["permissions"]}
    assert perms["launch_pipeline_execution"] and not perms["wipe_assets"]

    out = client.post(f"{served.url}/auth/logout", headers={"Origin": served.url})
    assert out.status_code == 303 and out.headers["location"].startswith(idp[0])
    assert client.get(f"{served.url}/auth/whoami").status_code == 401
    with psycopg.connect(served.pg_url) as conn:
        events = conn.execute(
            "SELECT action, outcome, body FROM dm_audit.events WHERE actor = 'ana@example.org'"
            " ORDER BY seq"
        ).fetchall()
    assert [(a, o) for a, o, _ in events] == [("auth.sign_in", "ok"), ("auth.sign_out", "ok")]
    detail = json.loads(events[0][2])["detail"]
    assert detail["roles"] == "task_manager+viewer" and SECRET not in events[0][2]


def test_the_provider_refuses_a_code_without_the_pkce_verifier(served, idp):
    """The provider really checks PKCE, so the successful sign-in above proves we send it."""
    client = httpx.Client(timeout=30)
    authorize = client.get(f"{served.url}/auth/login").headers["location"]
    back = client.post(authorize, data={"sub": "ana"})
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    token = httpx.post(f"{idp[0]}/oauth2/token", auth=("dmetl", "client-secret"),
                       data={"grant_type": "authorization_code", "code": code,
                             "redirect_uri": f"{served.url}/auth/callback"})  # fmt: skip
    assert token.status_code == 400 and token.json()["error"] == "invalid_grant"


def test_a_user_without_a_mapped_group_is_a_viewer(served):
    client, callback = sign_in(served, "bob")
    assert callback.status_code == 302
    assert client.get(f"{served.url}/auth/whoami").json()["roles"] == ["viewer"]
    resp = client.post(f"{served.url}/graphql", headers={"Origin": served.url},
                       json={"query": "mutation { reloadWorkspace { __typename } }"})  # fmt: skip
    assert resp.status_code == 403 and "viewer" in resp.json()["errors"][0]["message"]


def test_expired_and_forged_sessions_are_refused(served):
    ana = Principal(name="ana@example.org", roles=frozenset({Role.ADMIN}), mode="oidc")
    codec = SessionCodec(SECRET.encode(), 3600, secure=False)
    _, fresh = codec.issue(ana)
    _, expired = codec.issue(ana, now=time.time() - 3601)
    _, forged = SessionCodec(b"another secret", 3600, secure=False).issue(ana)
    whoami = f"{served.url}/auth/whoami"
    assert httpx.get(whoami, cookies={SESSION_COOKIE: fresh}).status_code == 200
    assert httpx.get(whoami, cookies={SESSION_COOKIE: expired}).status_code == 401
    assert httpx.get(whoami, cookies={SESSION_COOKIE: forged}).status_code == 401


def test_a_callback_without_the_sign_in_cookie_is_refused(served):
    resp = httpx.get(f"{served.url}/auth/callback", params={"code": "x", "state": "y"})
    assert resp.status_code == 400 and "did not start here" in resp.text
