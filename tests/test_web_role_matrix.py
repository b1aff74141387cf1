"""The role matrix against a real `dmetl serve` (trusted-proxy sign-in, so each request can be
any role): every role × every mutation of Dagster's GraphQL schema (read from the running server
by introspection) × every transport gives exactly the role's allowed set; a viewer changes
nothing by any route; launched runs carry the signed-in user; restricted metadata follows roles."""

from __future__ import annotations

import json
import shutil

import httpx
import psycopg
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    build_client_schema,
    get_introspection_query,
    get_named_type,
    is_composite_type,
    print_type,
)
from websockets.sync.client import connect as ws_connect

from etl_assets.web.roles import Role, allowed_mutations
from tests.conftest import EXAMPLES
from tests.web_helpers import LOCATION, dmetl_serve, gql, proxy_headers, serve_env

pytestmark = pytest.mark.integration
ROLES = [r.value for r in Role]


@pytest.fixture(scope="module")
def served(tmp_path_factory, pg_server_url):
    tmp = tmp_path_factory.mktemp("matrix")
    name = "dmtest_matrix"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    pg_url = psycopg.conninfo.make_conninfo(pg_server_url, dbname=name)
    modules = tmp / "datamodules"
    shutil.copytree(EXAMPLES, modules)
    env = serve_env(
        tmp, modules, pg_url,
        DM_WEB_AUTH="proxy", DM_PROXY_TRUSTED="127.0.0.1/32", DM_PROXY_SECRET="proxy-shared-secret",
    )  # fmt: skip
    with dmetl_serve(tmp, env, proxy_headers("viewer")) as s:
        s.pg_url = pg_url  # type: ignore[attr-defined]
        yield s
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _dummy(t):
    """A value of input type `t` with every required field filled, pointing at nothing real."""
    if isinstance(t, GraphQLNonNull):
        return _dummy(t.of_type)
    if isinstance(t, GraphQLList):
        return []
    if isinstance(t, GraphQLEnumType):
        return next(iter(t.values))
    if isinstance(t, GraphQLInputObjectType):
        return {
            n: _dummy(f.type)
            for n, f in t.fields.items()
            if isinstance(f.type, GraphQLNonNull) and f.default_value is None
        }
    return {"Int": 0, "Float": 0.0, "Boolean": False}.get(t.name, "dm-matrix-nonexistent")


@pytest.fixture(scope="module")
def mutations(served) -> dict[str, tuple[str, dict]]:
    """Each mutation of the served schema as (document, variables) with harmless arguments."""
    status, payload = gql(served, get_introspection_query(), headers=proxy_headers("viewer"))
    assert status == 200
    schema = build_client_schema(payload["data"])
    docs = {}
    for name, field in schema.mutation_type.fields.items():
        required = {a: arg for a, arg in field.args.items() if isinstance(arg.type, GraphQLNonNull)}
        decl = ", ".join(f"${a}: {arg.type}" for a, arg in required.items())
        call = ", ".join(f"{a}: ${a}" for a in required)
        selection = " { __typename }" if is_composite_type(get_named_type(field.type)) else ""
        head = f"mutation M({decl})" if decl else "mutation M"
        doc = f"{head} {{ {name}{f'({call})' if call else ''}{selection} }}"
        docs[name] = (doc, {a: _dummy(arg.type) for a, arg in required.items()})
    assert len(docs) > 30, print_type(schema.mutation_type)
    return docs


def test_every_schema_mutation_is_in_the_role_table(mutations):
    from etl_assets.web.roles import MUTATIONS

    assert set(mutations) <= set(MUTATIONS), set(mutations) - set(MUTATIONS)


def _json_post_passes(served, role, doc, variables) -> bool:
    status, payload = gql(served, doc, variables, headers=proxy_headers(role))
    if status == 403:
        assert payload["errors"][0]["extensions"]["code"] == "DM_FORBIDDEN", payload
        return False
    # it reached Dagster: and Dagster's own permission check agrees with the role table
    assert "UnauthorizedError" not in json.dumps(payload.get("data")), (role, doc, payload)
    return True


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(served, mutations, role):
    headers = {**proxy_headers(role), "Origin": served.url}
    url = served.graphql
    passed = set()
    for name, (doc, variables) in mutations.items():
        params = {"query": doc, "variables": json.dumps(variables)}
        assert httpx.get(url, params=params, headers=headers).status_code == 405, name
        text = httpx.post(url, params=params, content=json.dumps(params), timeout=30,
                          headers={**headers, "Content-Type": "text/plain"})  # fmt: skip
        assert text.status_code in (400, 415), (name, text.status_code)
        form = httpx.post(url, data=params, headers=headers, timeout=30)
        assert form.status_code == 415, (name, form.status_code)
        if _json_post_passes(served, role, doc, variables):
            passed.add(name)
    assert passed == set(allowed_mutations({Role(role), Role.VIEWER}) & set(mutations))

    ws_url = served.url.replace("http://", "ws://") + "/graphql"
    with ws_connect(ws_url, subprotocols=["graphql-ws"], origin=served.url,
                    additional_headers=proxy_headers(role)) as ws:  # fmt: skip
        ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(ws.recv(timeout=30))["type"] == "connection_ack"
        for i, (doc, variables) in enumerate(mutations.values()):
            payload = {"query": doc, "variables": variables}
            ws.send(json.dumps({"type": "start", "id": str(i), "payload": payload}))
            answer = json.loads(ws.recv(timeout=30))
            assert answer == {
                "type": "error", "id": str(i),
                "payload": {"message": "the websocket runs subscriptions only"},
            }  # fmt: skip


def test_the_role_table_says_what_the_product_brief_says():
    viewer = allowed_mutations({Role.VIEWER})
    manager = allowed_mutations({Role.TASK_MANAGER})
    assert viewer == {"setNuxSeen"}  # the welcome dialog's "Skip", nothing that changes data
    assert {"launchRun", "terminateRun", "launchPartitionBackfill", "addDynamicPartition",
            "startSchedule", "stopSensor"} <= manager  # fmt: skip
    assert not {"wipeAssets", "deleteRun", "reloadWorkspace", "reportRunlessAssetEvents"} & manager
    assert "reloadWorkspace" in allowed_mutations({Role.TASK_EDITOR})
    assert "launchRun" not in allowed_mutations({Role.DATA_MANAGER, Role.CONNECTION_OWNER})
    assert "setAppManagedComponent" not in allowed_mutations({Role.ADMIN})


PARTITIONS = """query($sel: RepositorySelector!) { partitionSetsOrError(repositorySelector: $sel,
  pipelineName: "clinic_job") { ... on PartitionSets { results { partitionsOrError {
  ... on Partitions { results { name } } } } } } }"""
ADD = """mutation($sel: RepositorySelector!) { addDynamicPartition(repositorySelector: $sel,
  partitionsDefName: "clinic_versions", partitionKey: "9.9.9") { __typename } }"""


def audit_rows(served, actor: str) -> list[dict]:
    with psycopg.connect(served.pg_url) as conn:
        rows = conn.execute(
            "SELECT action, outcome, body FROM dm_audit.events WHERE actor = %s ORDER BY seq",
            (actor,),
        ).fetchall()
    return [{"action": a, "outcome": o, **json.loads(b)["detail"]} for a, o, b in rows]


def partitions(served) -> set[str]:
    status, payload = gql(served, PARTITIONS, {"sel": LOCATION}, proxy_headers("admin"))
    sets = payload["data"]["partitionSetsOrError"]["results"]
    return {p["name"] for s in sets for p in s["partitionsOrError"]["results"]}


def test_a_viewer_changes_nothing_by_any_route(served):
    viewer = "nosy.viewer@example.org"
    headers = {**proxy_headers("viewer", viewer), "Origin": served.url}
    variables = json.dumps({"sel": LOCATION})
    url = served.graphql
    assert (
        httpx.get(url, params={"query": ADD, "variables": variables}, headers=headers).status_code
        == 405
    )
    plain = httpx.post(url, params={"query": ADD, "variables": variables}, content="{}",
                       headers={**headers, "Content-Type": "text/plain"})  # fmt: skip
    form = httpx.post(url, data={"query": ADD, "variables": variables}, headers=headers)
    status, _ = gql(served, ADD, {"sel": LOCATION}, proxy_headers("viewer", viewer))
    report = httpx.post(f"{served.url}/report_asset_materialization/clinic/outbox/wards",
                        headers=headers)  # fmt: skip
    bodyless = httpx.post(f"{served.url}/report_asset_observation/clinic/outbox/wards",
                          headers={**proxy_headers("viewer", viewer), "X-DM-CSRF": "1"})  # fmt: skip
    assert (plain.status_code, form.status_code, status) == (400, 415, 403)
    assert (report.status_code, bodyless.status_code) == (403, 403)
    assert "9.9.9" not in partitions(served)
    events = [e for e in audit_rows(served, viewer) if e["action"] != "auth.sign_in"]
    denied = [(e.get("transport"), e.get("operation") or e.get("route")) for e in events]
    assert denied == [
        ("GET", "addDynamicPartition"),
        ("POST text/plain", "addDynamicPartition"),
        ("POST application/x-www-form-urlencoded", "addDynamicPartition"),
        ("http", "addDynamicPartition"),
        (None, "report_asset_materialization"),
        (None, "report_asset_observation"),
    ]
    assert {e["outcome"] for e in events} == {"denied"}


def test_a_viewer_may_skip_the_welcome_dialog_but_not_launch_a_run(served):
    """The UI's "Skip" on Dagster's welcome dialog sends `mutation SetNuxSeen { setNuxSeen }`:
    a viewer gets no error for it, while a viewer's launches are still refused before Dagster."""
    viewer = "curious.viewer@example.org"
    headers = {**proxy_headers("viewer", viewer), "Origin": served.url}
    skip = httpx.post(
        served.graphql,
        json={"operationName": "SetNuxSeen", "query": "mutation SetNuxSeen { setNuxSeen }",
              "variables": {}},
        headers=headers, timeout=60,
    )  # fmt: skip
    assert skip.status_code == 200, skip.text
    assert skip.json() == {"data": {"setNuxSeen": True}}
    status, payload = gql(served, "query ShouldShowNux { shouldShowNux }", headers=headers)
    assert (status, payload) == (200, {"data": {"shouldShowNux": False}})

    params = {"selector": {**LOCATION, "jobName": "clinic_prepare_job"}}
    for field in ("launchRun", "launchPipelineExecution"):
        launch = "mutation($p: ExecutionParams!) { F(executionParams: $p) { __typename } }"
        status, payload = gql(served, launch.replace("F(", f"{field}("), {"p": params}, headers)
        assert status == 403, (field, payload)
        assert payload["errors"][0]["extensions"]["code"] == "DM_FORBIDDEN", payload
    events = [
        (e["operation"], e["outcome"]) for e in audit_rows(served, viewer) if "operation" in e
    ]
    assert events == [
        ("setNuxSeen", "ok"),
        ("launchRun", "denied"),
        ("launchPipelineExecution", "denied"),
    ]


def test_launched_runs_carry_the_signed_in_user_not_a_spoofed_tag(served):
    manager = "tara.manager@example.org"
    headers = proxy_headers("task_manager", manager)
    status, payload = gql(served, ADD.replace("9.9.9", "1.0.1"), {"sel": LOCATION}, headers)
    assert payload["data"]["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess"
    launch = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
      __typename ... on LaunchRunSuccess { run { runId tags { key value } } } } }"""
    params = {
        "selector": {**LOCATION, "jobName": "clinic_prepare_job"},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "1.0.1"},
                                       {"key": "user", "value": "mallory@example.org"}]},
    }  # fmt: skip
    status, payload = gql(served, launch, {"p": params}, headers)
    run = payload["data"]["launchRun"]["run"]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["user"] == manager
    terminate = """mutation($id: String!) { terminateRun(runId: $id) { __typename } }"""
    gql(served, terminate, {"id": run["runId"]}, headers)
    launched = [e for e in audit_rows(served, manager) if e["action"] == "run.launch"]
    assert launched[0]["outcome"] == "ok" and launched[0]["run"] == run["runId"]


MATERIALIZATIONS = """{ assetOrError(assetKey: {path: ["clinic", "outbox", "wards"]}) {
  ... on Asset { assetMaterializations { metadataEntries {
    ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue } } } } } }"""


def test_restricted_metadata_is_stripped_for_roles_that_may_not_see_it(served):
    report = httpx.post(
        f"{served.url}/report_asset_materialization/clinic/outbox/wards",
        json={"partition": "1.0.1", "metadata": {"dm/restricted/preview": "Ward of Jane Roe",
                                                  "dagster/row_count": 7}},
        headers={**proxy_headers("admin"), "Origin": served.url},
    )  # fmt: skip
    assert report.status_code == 200, report.text

    def seen(role: str) -> str:
        status, payload = gql(served, MATERIALIZATIONS, headers=proxy_headers(role))
        assert status == 200, payload
        return json.dumps(payload["data"])

    assert "Jane Roe" in seen("data_manager") and "Jane Roe" in seen("admin")
    for role in ("viewer", "task_manager", "task_editor", "connection_owner"):
        text = seen(role)
        assert "Jane Roe" not in text and '"intValue": 7' in text, (role, text)


def test_proxy_identity_needs_the_trusted_address_and_the_secret(served):
    whoami = f"{served.url}/auth/whoami"
    good = proxy_headers("admin", "eve@example.org")
    assert httpx.get(whoami, headers=good).json()["roles"] == ["admin", "viewer"]
    wrong_secret = {**good, "X-DM-Proxy-Secret": "guess"}
    assert httpx.get(whoami, headers=wrong_secret).status_code == 401
    no_secret = {k: v for k, v in good.items() if k != "X-DM-Proxy-Secret"}
    assert httpx.get(whoami, headers=no_secret).status_code == 401
    # from another loopback address than the trusted 127.0.0.1, a forwarded-for rewrite
    # claiming the proxy's address does not help: the peer address is what counts
    elsewhere = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    forged = {**good, "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"}
    assert elsewhere.get(whoami, headers=forged).status_code == 401
    assert (
        elsewhere.get(served.graphql, params={"query": "{ version }"}, headers=forged).status_code
        == 401
    )
    refused = [e for e in audit_rows(served, "eve@example.org") if e["outcome"] == "denied"]
    assert [e["reason"] for e in refused] == ["wrong proxy secret"] * 2 + ["untrusted address"] * 2
