"""Seed 003's use cases in the console, in headless Chromium (Debian's, driven by Playwright)
against a real `dmetl serve` with OIDC sign-in, PostgreSQL and the example modules: each signed
in as the role the use case names, each checking that a role that may not do it is refused
(a 403 page, by link and by direct URL or POST), and that the page's controls have accessible
names. The screenshots are docs/console.md's."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from oidc_provider_mock import User
from playwright.sync_api import expect

from tests.conftest import EXAMPLES, ROOT
from tests.helpers import scratch_database
from tests.oidc_idp import oidc_provider
from tests.servers import free_port
from tests.test_web_browser import browser  # noqa: F401 - the module-scoped Chromium fixture
from tests.web_helpers import dmetl_serve, docs_images, serve_env

pytestmark = [pytest.mark.integration, pytest.mark.browser]
SHOTS = docs_images("console")
ROLES = "groups:\n  etl-ops: [task_manager]\n  data-mgrs: [data_manager]\ndefault: [viewer]\n"
USERS = {
    "tara": ("tara@example.org", ["etl-ops"]),  # task manager
    "dana": ("dana@example.org", ["data-mgrs"]),  # data manager
    "vic": ("vic@example.org", []),  # viewer
}
NAMED_CONTROLS = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')) {
    const name = (el.getAttribute('aria-label') || el.innerText || el.value || '').trim();
    const labelled = el.labels && el.labels.length > 0;
    const needsLabel = ['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName) && el.type !== 'submit';
    if (needsLabel ? !(labelled || el.getAttribute('aria-label')) : !name) bad.push(el.outerHTML.slice(0, 80));
  }
  return bad;
}"""


def dmetl(env: dict, *args: str) -> subprocess.CompletedProcess:
    code = "import sys; from etl_assets.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def set_auto_upload(modules: Path, on: bool) -> None:
    path = modules / "clinic" / "module.jsonld"
    doc = json.loads(path.read_text())
    doc["autoUpload"] = on
    path.write_text(json.dumps(doc, indent=2))


@pytest.fixture(scope="module")
def site(tmp_path_factory, pg_server_url, request):
    """clinic 1.0.1 published and 1.0.2 prepared (waiting for approval), then `dmetl serve`
    with OIDC sign-in in front of them."""
    tmp = tmp_path_factory.mktemp("console")
    pg_url = scratch_database(request, pg_server_url, "dmtest_console")
    modules = tmp / "datamodules"
    shutil.copytree(EXAMPLES, modules)
    (tmp / "roles.yaml").write_text(ROLES)
    users = [User(sub=s, claims={"email": e, "groups": g}) for s, (e, g) in USERS.items()]
    port = free_port()
    with oidc_provider(users) as (issuer, _):
        env = serve_env(
            tmp, modules, pg_url,
            DM_WEB_AUTH="oidc", DM_OIDC_ISSUER=issuer, DM_OIDC_CLIENT_ID="dmetl",
            DM_OIDC_CLIENT_SECRET="client-secret", DM_WEB_ROLES_FILE=str(tmp / "roles.yaml"),
            DM_WEB_PUBLIC_URL=f"http://127.0.0.1:{port}",
        )  # fmt: skip
        set_auto_upload(modules, True)
        assert dmetl(env, "run", "clinic").returncode == 0
        set_auto_upload(modules, False)
        done = dmetl(env, "run", "clinic")
        assert done.returncode == 0, done.stderr[-2000:]
        with dmetl_serve(tmp, env, port=port) as served:
            served.pg_url = pg_url  # type: ignore[attr-defined]
            served.outbox = tmp / "outbox"  # type: ignore[attr-defined]
            yield served


@pytest.fixture(scope="module")
def users(browser, site):  # noqa: F811
    """One signed-in browser page per user, shared by the tests."""
    pages, contexts = {}, []
    for sub in USERS:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(f"{site.url}/console/")
        page.get_by_role("button", name=sub, exact=True).click()
        page.wait_for_url(f"{site.url}/console/**")
        pages[sub] = page
        contexts.append(context)
    yield pages
    for context in contexts:
        context.close()


def named(page) -> None:
    assert page.evaluate(NAMED_CONTROLS) == []


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def refused(page, site, path: str, form: dict | None = None) -> None:
    """`path` is refused for this user: a 403 page by URL, and a 403 to a POST carrying the
    user's own valid CSRF token (so the role, not the token, is what refuses it)."""
    if form is None:
        response = page.goto(f"{site.url}{path}")
        assert response.status == 403
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        return
    page.goto(f"{site.url}/console/")
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    response = page.request.post(
        f"{site.url}{path}", form={**form, "csrf": token}, headers={"Origin": site.url}
    )
    assert response.status == 403, response.text()[:300]


def state_of(page, site, version: str, want: str, timeout: float = 120) -> str:
    """Reload the version page until its state is `want` (a run is under way)."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(f"{site.url}/console/modules/clinic/versions/{version}")
        state = page.locator("#version-state").inner_text()
        if state == want or time.monotonic() > deadline:
            return state
        time.sleep(1)


def audit_rows(site, action: str) -> list[dict]:
    with psycopg.connect(site.pg_url) as conn:
        rows = conn.execute(
            "SELECT actor, outcome, body FROM dm_audit.events WHERE action = %s ORDER BY seq",
            (action,),
        ).fetchall()
    return [{"actor": a, "outcome": o, "body": json.loads(b)} for a, o, b in rows]


def test_view_prepared_data(site, users):
    page = users["dana"]
    page.goto(f"{site.url}/console/")
    page.get_by_role("link", name="Outbox", exact=True).click()
    prepared = page.get_by_role("table", name="Prepared versions")
    expect(prepared).to_contain_text("waiting for approval")
    named(page)
    shot(page, "outbox")
    page.get_by_role("link", name="clinic 1.0.2", exact=True).click()
    expect(page.locator("#version-state")).to_have_text("waiting for approval")
    page.get_by_role("link", name="Review patients").click()
    expect(page.locator("#row-count")).to_have_text(re.compile(r"^\d+$"))
    privacy = page.get_by_role("table", name="Privacy models")
    expect(privacy).to_contain_text("k-anonymity")
    expect(page.locator("#diff-summary")).to_contain_text("Against 1.0.1")
    expect(page.get_by_role("table", name="Column statistics")).to_contain_text("patient_id")
    expect(page.get_by_role("table", name="Rows of patients")).to_be_visible()
    named(page)
    shot(page, "view-prepared-data")
    page.get_by_role("link", name="Next page").first.click()
    expect(page.get_by_text("Page 2 of")).to_have_count(2)
    page.goto(f"{site.url}/console/modules/clinic/versions/1.0.2")
    page.get_by_role("link", name="Quarantine of 1.0.2").click()
    page.get_by_label("Rule").select_option("range")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#quarantine-count")).to_contain_text(" of ")
    cells = page.get_by_role("table", name="Quarantined records").locator(
        "tbody tr td:nth-child(4)"
    )
    assert cells.count() > 0 and set(cells.all_inner_texts()) == {"range"}
    named(page)
    # the docs' screenshot shows the page, not the example's restricted records
    page.get_by_role("table", name="Quarantined records").evaluate(
        "t => t.style.filter = 'blur(5px)'"
    )
    shot(page, "quarantine")
    # a viewer reaches neither the outbox nor the quarantine; a task manager not the quarantine
    refused(users["vic"], site, "/console/modules/clinic/versions/1.0.2/outbox/patients")
    refused(users["vic"], site, "/console/modules/clinic/versions/1.0.2/quarantine")
    refused(users["tara"], site, "/console/modules/clinic/versions/1.0.2/quarantine?rule=range")
    users["vic"].goto(f"{site.url}/console/modules/clinic/versions/1.0.2")
    expect(users["vic"].get_by_role("link", name="Quarantine of 1.0.2")).to_have_count(0)


def test_manage_prepared_data(site, users):
    page = users["dana"]
    page.goto(f"{site.url}/console/modules/clinic/versions/1.0.2")
    page.get_by_role("link", name="Review wards").click()
    page.get_by_role("link", name="Edit wards W-CAR").click()  # prefilled with the record
    prefilled = json.loads(page.get_by_label("Changes (JSON)").input_value())
    assert prefilled["changes"][0]["key"] == {"ward_id": "W-CAR"}
    assert prefilled["changes"][0]["values"]["name"] == "Cardiology"
    page.goto(f"{site.url}/console/modules/clinic/versions/1.0.2")
    page.get_by_role("link", name="Correct records of 1.0.2").click()
    changes = {"changes": [
        {"table": "wards", "op": "edit", "key": {"ward_id": "W-CAR"},
         "values": {"name": "Cardiology North"}},
        {"table": "visits", "op": "delete", "key": {"visit_id": 50001}},
    ]}  # fmt: skip
    page.get_by_label("Changes (JSON)").fill(json.dumps({"changes": [
        {"table": "wards", "op": "delete", "key": {"ward_id": "NOPE"}}]}))  # fmt: skip
    page.get_by_label("Reason").fill("ward renamed; a visit was recorded twice")
    page.get_by_role("button", name="Apply change set").click()
    expect(page.get_by_role("alert")).to_contain_text("no record with key NOPE")
    page.get_by_label("Changes (JSON)").fill(json.dumps(changes, indent=2))
    named(page)
    shot(page, "manage-prepared-data")
    page.get_by_role("button", name="Apply change set").click()
    expect(page.get_by_role("status")).to_contain_text("all blocking checks pass")
    history = page.get_by_role("list", name="History")
    expect(history).to_contain_text("ward renamed; a visit was recorded twice")
    expect(history).to_contain_text("wards: 0 added, 1 edited, 0 deleted")
    expect(page.get_by_text("All blocking checks pass.", exact=True)).to_be_visible()
    shot(page, "corrected-version")
    [event] = [e for e in audit_rows(site, "outbox.correct") if e["outcome"] == "ok"]
    assert event["actor"] == "dana@example.org"
    assert event["body"]["detail"]["tables"]["visits"]["keys"] == ["50001"]
    assert "Cardiology North" not in json.dumps(event["body"])  # keys, never values
    # a task manager may not correct: no link, and the page and the POST are refused
    path = "/console/modules/clinic/versions/1.0.2/corrections"
    refused(users["tara"], site, path)
    refused(users["tara"], site, path, {"changes": json.dumps(changes), "reason": "x"})


def test_upload_prepared_data(site, users):
    path = "/console/modules/clinic/versions/1.0.2/approve"
    refused(users["dana"], site, path, {"comment": "not mine to approve"})
    refused(users["vic"], site, path, {"comment": "nor mine"})
    page = users["tara"]
    page.goto(f"{site.url}/console/modules/clinic/versions/1.0.2")
    page.get_by_label("Comment").fill("reviewed with the data manager")
    named(page)
    shot(page, "upload-prepared-data")
    page.get_by_role("button", name="Approve and upload").click()
    expect(page.get_by_role("status")).to_contain_text("its upload runs")
    assert state_of(page, site, "1.0.2", "published (current)") == "published (current)"
    page.goto(f"{site.url}/console/modules/clinic")
    versions = page.get_by_role("table", name="Versions")
    expect(versions.get_by_role("row").filter(has_text="1.0.1")).to_contain_text("superseded")
    run_link = page.get_by_role("link", name=re.compile(r"^Run \w{8} of 1\.0\.2 in Dagster$"))
    assert run_link.get_attribute("href").startswith("/runs/")
    shot(page, "published-version")
    with psycopg.connect(site.pg_url) as conn:
        name = conn.execute("SELECT name FROM dm_clinic.wards WHERE ward_id = 'W-CAR'").fetchone()[
            0
        ]
    assert name == "Cardiology North"  # the correction was published
    assert [e["actor"] for e in audit_rows(site, "version.approve")] == ["tara@example.org"]


def test_process_etl_task(site, users):
    refused(users["dana"], site, "/console/modules/clinic/start", {})
    page = users["tara"]
    page.goto(f"{site.url}/console/modules/clinic")
    named(page)
    page.get_by_role("button", name="Start a new version").click()
    expect(page.get_by_role("status")).to_contain_text("Started clinic 1.0.3")
    assert state_of(page, site, "1.0.3", "waiting for approval") == "waiting for approval"
    expect(page.get_by_text("Triggered by")).to_be_visible()
    expect(page.locator("dd").filter(has_text="tara@example.org").first).to_be_visible()
    shot(page, "process-etl-task")
    # reject it with a reason: it stays in the outbox, rejected, until corrected or discarded
    refused(users["dana"], site, "/console/modules/clinic/versions/1.0.3/reject", {"reason": "x"})
    page.get_by_label("Reason for rejecting").fill("visits of the new ward are missing")
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("status")).to_contain_text("Rejected clinic 1.0.3")
    assert page.locator("#version-state").inner_text() == "rejected"
    expect(page.get_by_role("list", name="History")).to_contain_text("Rejected by tara@example.org")
    launches = [e for e in audit_rows(site, "run.launch") if e["body"]["detail"].get("job")]
    assert launches[-1]["actor"] == "tara@example.org"
    assert launches[-1]["body"]["target"]["version"] == "1.0.3"


def test_stop_etl_task_with_discard(site, users):
    refused(users["vic"], site, "/console/modules/clinic/versions/1.0.3/stop")
    refused(
        users["dana"], site, "/console/modules/clinic/versions/1.0.3/stop", {"outbox": "discard"}
    )
    page = users["tara"]
    page.goto(f"{site.url}/console/modules/clinic")
    page.get_by_role("button", name="Start a new version").click()
    expect(page.get_by_role("status")).to_contain_text("Started clinic 1.0.4")
    page.get_by_role("link", name=re.compile("^(Stop|Discard) this version$")).click()
    page.get_by_label("Discard the outbox").check()
    named(page)
    shot(page, "stop-etl-task")
    page.get_by_role("button", name=re.compile("^Confirm (stop|discard)$")).click()
    expect(page.get_by_role("status")).to_contain_text("its outbox is discarded")
    assert page.locator("#version-state").inner_text() == "discarded"
    time.sleep(2)  # a run that was terminated writes nothing afterwards
    assert not (site.outbox / "published" / "clinic" / "1.0.4").exists()
    [stop] = audit_rows(site, "version.stop")
    assert stop["actor"] == "tara@example.org" and stop["body"]["detail"]["discard"] is True
    # pause and resume the module (its schedule)
    page.goto(f"{site.url}/console/modules/clinic")
    page.get_by_role("button", name="Pause module").click()
    expect(page.get_by_role("status")).to_contain_text("Paused clinic")
    expect(page.locator("dd").filter(has_text="paused")).to_be_visible()
    page.get_by_role("button", name="Resume module").click()
    expect(page.locator("dd").filter(has_text="running: clinic_schedule")).to_be_visible()
    refused(users["vic"], site, "/console/modules/clinic/pause", {})


def test_view_run_history(site, users):
    refused(users["vic"], site, "/console/runs")
    page = users["dana"]
    page.goto(f"{site.url}/console/")
    page.get_by_role("link", name="Run history").click()
    runs = page.get_by_role("table", name="Runs")
    expect(runs).to_contain_text("clinic_upload_job")
    named(page)
    shot(page, "run-history")
    runs.get_by_role("row").filter(has_text="clinic_upload_job").get_by_role("link").first.click()
    expect(page.locator("#run-status")).to_have_text("success")
    expect(page.get_by_role("table", name="Rows per asset")).to_contain_text("clinic/upload/wards")
    expect(
        page.get_by_role("link", name=re.compile(r"^Open run \w{8} in Dagster$"))
    ).to_be_visible()
    shot(page, "run-detail")


def test_audit(site, users):
    refused(users["vic"], site, "/console/audit")
    refused(users["vic"], site, "/console/audit/verify")
    page = users["tara"]
    page.goto(f"{site.url}/console/audit")
    page.get_by_label("Action").select_option("outbox.correct")
    page.get_by_label("User").select_option("dana@example.org")
    page.get_by_role("button", name="Search").click()
    entries = page.get_by_role("table", name="Audit entries")
    expect(entries.locator("tbody tr")).to_have_count(
        2
    )  # the refused change set and the applied one
    named(page)
    shot(page, "audit")
    entries.get_by_role("link").first.click()
    detail = page.get_by_label("Entry detail")
    expect(detail).to_contain_text('"reason": "ward renamed; a visit was recorded twice"')
    shot(page, "audit-entry")
    page.goto(f"{site.url}/console/audit?action=console.refused")
    expect(page.get_by_role("table", name="Audit entries")).to_contain_text("vic@example.org")
    page.goto(f"{site.url}/console/audit")
    page.get_by_role("link", name="Verify the audit log").click()
    expect(page.locator("#verdict")).to_contain_text("Audit log intact")
    shot(page, "audit-verify")
