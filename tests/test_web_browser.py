"""In headless Chromium (Debian's, driven by Playwright): a cross-site page cannot change anything
through a signed-in user's browser; a viewer finds Materialize and Launch disabled; a task
manager launches a version and the run says who launched it; the audit log has all of it."""

from __future__ import annotations

import http.server
import re
import shutil
import threading
from pathlib import Path

import psycopg
import pytest
from oidc_provider_mock import User
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from etl_assets.metadata.loader import load_module
from etl_assets.orchestration.factory import build_module
from etl_assets.stages import STAGES
from tests.conftest import EXAMPLES
from tests.helpers import scratch_database
from tests.oidc_idp import oidc_provider
from tests.servers import free_port
from tests.web_helpers import LOCATION, dmetl_serve, docs_images, serve_env

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CHROMIUM = Path("/usr/bin/chromium")
ROLES_FILE = "groups:\n  etl-ops: [task_manager]\ndefault: [viewer]\n"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is missing: `make install-browser` (apt-get install chromium)"
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, pg_server_url, request):
    """An OIDC provider and a `dmetl serve` with the example modules, behind it."""
    tmp = tmp_path_factory.mktemp("browser")
    pg_url = scratch_database(request, pg_server_url, "dmtest_browser")
    shutil.copytree(EXAMPLES, tmp / "datamodules")
    (tmp / "roles.yaml").write_text(ROLES_FILE)
    users = [
        User(sub="tara", claims={"email": "tara@example.org", "groups": ["etl-ops"]}),
        User(sub="vic", claims={"email": "vic@example.org", "groups": []}),
    ]
    port = free_port()
    with oidc_provider(users) as (issuer, _):
        env = serve_env(
            tmp, tmp / "datamodules", pg_url,
            DM_WEB_AUTH="oidc", DM_OIDC_ISSUER=issuer, DM_OIDC_CLIENT_ID="dmetl",
            DM_OIDC_CLIENT_SECRET="client-secret", DM_WEB_ROLES_FILE=str(tmp / "roles.yaml"),
            DM_WEB_PUBLIC_URL=f"http://127.0.0.1:{port}",
        )  # fmt: skip
        with dmetl_serve(tmp, env, port=port) as served:
            served.pg_url = pg_url  # type: ignore[attr-defined]
            served.shots = tmp  # type: ignore[attr-defined]
            yield served


def signed_in(browser, site, sub: str):
    """A browser context signed in as `sub` through the provider's page."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site.url}/runs")
    page.get_by_role("button", name=sub, exact=True).click()
    page.wait_for_url(f"{site.url}/runs**")
    return context, page


def skip_welcome(page) -> None:
    """Dagster's first-visit "Join the community" dialog hides the page from the accessibility
    tree until it is dismissed."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=20_000)
    except PlaywrightTimeout:
        return
    skip.click()
    skip.wait_for(state="detached", timeout=20_000)


def graphql(page, site, query: str, variables: dict | None = None) -> dict:
    """A same-origin JSON POST from the signed-in browser context."""
    resp = page.request.post(
        f"{site.url}/graphql",
        data={"query": query, "variables": variables or {}},
        headers={"Origin": site.url, "Content-Type": "application/json"},
    )
    return resp.json()


def partition_keys(page, site) -> set[str]:
    q = """query($sel: RepositorySelector!) { partitionSetsOrError(repositorySelector: $sel,
      pipelineName: "clinic_job") { ... on PartitionSets { results { partitionsOrError {
      ... on Partitions { results { name } } } } } } }"""
    sets = graphql(page, site, q, {"sel": LOCATION})["data"]["partitionSetsOrError"]["results"]
    return {p["name"] for s in sets for p in s["partitionsOrError"]["results"]}


ATTACK = """<!doctype html><html><body>
<img src="{target}/graphql?query={get_mutation}">
<form id="f" method="post" enctype="text/plain" action="{target}/graphql?query={get_mutation}">
<input name='{{"query": "x", "y": "' value='"}}'></form>
<script>
const ws = new WebSocket("{ws}/graphql", "graphql-ws");
ws.onopen = () => {{ ws.send(JSON.stringify({{type: "connection_init"}}));
  ws.send(JSON.stringify({{type: "start", id: "1", payload: {{query: decodeURIComponent("{get_mutation}")}}}})); }};
ws.onerror = () => {{ document.title = "ws refused"; }};
setTimeout(() => document.getElementById("f").submit(), 500);
</script></body></html>"""


@pytest.fixture
def attacker(tmp_path, site):
    """A page on another loopback port (same site, other origin) that attacks `site`."""
    from urllib.parse import quote

    mutation = ('mutation { addDynamicPartition(repositorySelector: {repositoryLocationName: '
                '"datamodule_etl", repositoryName: "__repository__"}, partitionsDefName: '
                '"clinic_versions", partitionKey: "6.6.6") { __typename } }')  # fmt: skip
    html = ATTACK.format(
        target=site.url, ws=site.url.replace("http", "ws"), get_mutation=quote(mutation)
    )
    (tmp_path / "index.html").write_text(html)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/index.html"
    server.shutdown()


def test_a_cross_site_page_changes_nothing(browser, site, attacker):
    context, page = signed_in(browser, site, "tara")  # a task manager: may add partitions
    assert "6.6.6" not in partition_keys(page, site)
    evil = context.new_page()
    evil.goto(attacker)
    evil.wait_for_timeout(2500)  # the form posts after 0.5 s; give the requests time to land
    assert "6.6.6" not in partition_keys(page, site)
    with psycopg.connect(site.pg_url) as conn:
        refused = conn.execute(
            "SELECT body::jsonb #>> '{detail,transport}' FROM dm_audit.events"
            " WHERE actor = 'tara@example.org' AND action = 'graphql.mutation' AND outcome = 'denied'"
        ).fetchall()
    assert {r[0] for r in refused} >= {"GET", "POST text/plain"}
    context.close()


JOB_PAGE = "/locations/datamodule_etl/jobs/clinic_prepare_job"
LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId tags { key value } } } } }"""


def materialize_button(page):
    button = page.get_by_role("button").filter(has_text=re.compile(r"^Materialize"))
    button.first.wait_for(timeout=60_000)
    return button.first


def test_viewer_sees_disabled_controls_and_task_manager_launches(browser, site):
    context, page = signed_in(browser, site, "vic")
    page.goto(f"{site.url}/assets/clinic/outbox/wards")
    skip_welcome(page)
    assert materialize_button(page).is_disabled()
    page.screenshot(path=str(site.shots / "viewer-asset.png"))
    page.goto(f"{site.url}{JOB_PAGE}")
    assert materialize_button(page).is_disabled()
    params = {"selector": {**LOCATION, "jobName": "clinic_prepare_job"},
              "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "1.0.1"}]}}  # fmt: skip
    denied = graphql(page, site, LAUNCH, {"p": params})
    assert denied["errors"][0]["extensions"]["code"] == "DM_FORBIDDEN"
    context.close()

    context, page = signed_in(browser, site, "tara")
    add = """mutation($sel: RepositorySelector!) { addDynamicPartition(repositorySelector: $sel,
      partitionsDefName: "clinic_versions", partitionKey: "1.0.1") { __typename } }"""
    added = graphql(page, site, add, {"sel": LOCATION})["data"]["addDynamicPartition"]
    assert added["__typename"] == "AddDynamicPartitionSuccess"
    page.goto(f"{site.url}{JOB_PAGE}")
    skip_welcome(page)
    assert materialize_button(page).is_enabled()
    spoofed = {**params, "executionMetadata": {"tags": [
        *params["executionMetadata"]["tags"], {"key": "user", "value": "vic@example.org"}]}}  # fmt: skip
    run = graphql(page, site, LAUNCH, {"p": spoofed})["data"]["launchRun"]["run"]
    assert {t["key"]: t["value"] for t in run["tags"]}["user"] == "tara@example.org"
    page.goto(f"{site.url}/runs/{run['runId']}")
    page.wait_for_timeout(3000)
    page.screenshot(path=str(site.shots / "manager-run.png"))
    context.close()
    with psycopg.connect(site.pg_url) as conn:
        events = conn.execute(
            "SELECT actor, action, outcome, run_id FROM dm_audit.events"
            " WHERE action IN ('run.launch', 'graphql.mutation') ORDER BY seq"
        ).fetchall()
    assert ("vic@example.org", "run.launch", "denied", None) in [tuple(e) for e in events] or (
        "vic@example.org", "graphql.mutation", "denied", None) in [tuple(e) for e in events]  # fmt: skip
    assert ("tara@example.org", "run.launch", "ok", run["runId"]) in [tuple(e) for e in events]


LINEAGE = "/locations/datamodule_etl/asset-groups/{module}/lineage"
LINEAGE_SHOT = docs_images() / "lineage.png"


def test_every_lineage_box_says_its_stage_and_table(browser, site):
    """The lineage graph labels a box with the key's last part (the table); the stage is the
    asset's kind, which Dagster shows as a tag on the box."""
    md = build_module(load_module(EXAMPLES / "clinic"))
    expected: dict[str, set[str]] = {}
    for assets_def in md.assets:
        for key in assets_def.keys:
            expected.setdefault(key.path[1], set()).add(key.path[2])
    assert set(expected) == set(STAGES)
    context, page = signed_in(browser, site, "tara")
    # wide enough that zoom-to-fit keeps full boxes (below 60% Dagster draws names only)
    page.set_viewport_size({"width": 2400, "height": 1300})
    page.goto(f"{site.url}{LINEAGE.format(module='clinic')}")
    skip_welcome(page)
    boxes = page.locator("foreignObject")
    boxes.get_by_text("anonymize", exact=True).first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # the graph's live data (status rows) settles
    for stage, tables in expected.items():
        stage_boxes = boxes.filter(has=page.get_by_text(stage, exact=True))
        assert stage_boxes.count() == len(tables), stage
        for table in tables:
            box = stage_boxes.filter(has=page.get_by_text(table, exact=True))
            assert box.count() == 1 and box.first.is_visible(), (stage, table)
    LINEAGE_SHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(LINEAGE_SHOT))
    context.close()
