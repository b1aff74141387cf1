"""Seed 003's governance use cases in headless Chromium against a real `dmetl serve`, an OIDC
provider, PostgreSQL and an SMTP server on loopback: Manage External Datamodule Connection (task
editor), Get External Datamodule Access (any user), Approve External Datamodule Access
(connection owner), Manage Scripts (task editor) and the config upload. Each also checks that a
role that may not do it is refused, by the page and by a direct POST. Screenshots go to
docs/img/console/ (docs/console.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from oidc_provider_mock import User
from playwright.sync_api import expect, sync_playwright

from etl_assets.drafts import validate_draft
from tests.conftest import EXAMPLES, ROOT
from tests.helpers import scratch_database
from tests.oidc_idp import oidc_provider
from tests.servers import free_port, smtp_inbox
from tests.web_helpers import dmetl_serve, docs_images, serve_env

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = docs_images("console")
ROLES = (
    "groups:\n  editors: [task_editor]\n  owners: [connection_owner]\n  ops: [task_manager]\n"
    "default: [viewer]\n"
)
PEOPLE = {  # sub: (email, groups)
    "ed": ("ed@example.org", ["editors"]),
    "olga": ("olga@example.org", ["owners"]),
    "oscar": ("oscar@example.org", ["owners"]),
    "dana": ("dana@example.org", []),
    "tara": ("tara@example.org", ["ops"]),
}
# Every visible form control has an accessible name (a label, aria-label or text).
UNNAMED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a')]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !(e.textContent || '').trim())
  .map(e => e.outerHTML.slice(0, 120))"""


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make install-browser`")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


def publish_two_versions(folder: Path, env: dict[str, str]) -> None:
    """clinic 1.0.1, then 1.0.2 after a metadata change (the config history has two hashes)."""
    code = "import sys; from etl_assets.cli import main; sys.exit(main())"
    meta = folder / "module.jsonld"
    for n in (1, 2):
        if n == 2:
            meta.write_text(meta.read_text().replace('"retentionDays": 30', '"retentionDays": 45'))
        done = subprocess.run(
            [sys.executable, "-c", code, "run", "clinic"], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def site(tmp_path_factory, pg_server_url, request):
    tmp = tmp_path_factory.mktemp("governance")
    pg_url = scratch_database(request, pg_server_url, "dmtest_console_governance")
    shutil.copytree(EXAMPLES, tmp / "datamodules")
    (tmp / "roles.yaml").write_text(ROLES)
    users = [User(sub=s, claims={"email": e, "groups": g}) for s, (e, g) in PEOPLE.items()]
    port = free_port()
    with oidc_provider(users) as (issuer, _), smtp_inbox() as (smtp_port, inbox):
        env = serve_env(
            tmp, tmp / "datamodules", pg_url,
            DM_WEB_AUTH="oidc", DM_OIDC_ISSUER=issuer, DM_OIDC_CLIENT_ID="dmetl",
            DM_OIDC_CLIENT_SECRET="client-secret", DM_WEB_ROLES_FILE=str(tmp / "roles.yaml"),
            DM_WEB_PUBLIC_URL=f"http://127.0.0.1:{port}",
            DM_SMTP_HOST="127.0.0.1", DM_SMTP_PORT=str(smtp_port), DM_SMTP_FROM="etl@example.org",
        )  # fmt: skip
        publish_two_versions(tmp / "datamodules" / "clinic", env)
        with dmetl_serve(tmp, env, port=port) as served:
            served.inbox = inbox  # type: ignore[attr-defined]
            served.modules = tmp / "datamodules"  # type: ignore[attr-defined]
            yield served


@pytest.fixture(scope="module")
def people(browser, site):
    """One signed-in browser page per person (signing in once per module)."""
    pages = {}
    for sub in PEOPLE:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{site.url}/console/")
        page.get_by_role("button", name=sub, exact=True).click()
        page.wait_for_url(f"{site.url}/console/**")
        pages[sub] = page
    yield pages
    for page in pages.values():
        page.context.close()


def named(page) -> None:
    assert page.evaluate(UNNAMED) == [], f"controls without an accessible name on {page.url}"


def csrf_of(page) -> str:
    return page.locator("input[name=csrf]").first.get_attribute("value")


def token_of(page, site) -> str:
    """The user's own CSRF token, from the access request form of a connection they lack."""
    page.goto(f"{site.url}/console/connections/hospital_db")
    return csrf_of(page)


def post(page, site, path: str, form: dict) -> int:
    """A same-origin form POST from the signed-in context (with the user's own CSRF token)."""
    resp = page.request.post(
        f"{site.url}{path}", form=form, headers={"Origin": site.url}, max_redirects=0
    )
    return resp.status


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_manage_external_datamodule_connection(site, people):
    ed = people["ed"]
    ed.goto(f"{site.url}/console/connections")
    ed.get_by_role("link", name="New connection").click()
    named(ed)
    ed.get_by_label("Name (as module metadata names it)").fill("hospital_db")
    ed.get_by_label("Type").select_option("postgres")
    ed.get_by_label("Contract: what the connection provides").fill("Admissions, one row per stay.")
    ed.get_by_label("Contract URL").fill("https://data.example.org/hospital/croissant.json")
    ed.get_by_label("Secret variable name (never the value)").fill("HOSPITAL_DB_URL")
    owners = ed.get_by_label("Owners (e-mail or team:<name>, one per line)")
    owners.fill("olga")
    ed.get_by_role("button", name="Create connection").click()
    expect(ed.get_by_role("alert")).to_contain_text(
        "owners: owners must be e-mail addresses or team:<name>, got ['olga']"
    )
    owners.fill("olga@example.org")
    ed.get_by_role("button", name="Create connection").click()
    expect(ed.get_by_role("status")).to_have_text(
        "Connection hospital_db created (owners e-mailed: olga@example.org)."
    )
    assert site.inbox.messages[-1]["Subject"] == "You own the connection hospital_db"
    ed.get_by_role("link", name="Edit connection").click()
    ed.get_by_label("Contract: what the connection provides").fill("Admissions; nightly.")
    ed.get_by_role("button", name="Save connection").click()
    expect(ed.get_by_role("status")).to_have_text("Connection hospital_db saved.")
    expect(ed.locator("dl")).to_contain_text("Admissions; nightly.")
    expect(ed.locator("dl")).to_contain_text("HOSPITAL_DB_URL")
    named(ed)
    ed.goto(f"{site.url}/console/connections")
    shot(ed, "connections")

    dana = people["dana"]  # a viewer may look, not create or edit
    dana.goto(f"{site.url}/console/connections")
    expect(dana.get_by_role("link", name="New connection")).to_have_count(0)
    dana.goto(f"{site.url}/console/connections/hospital_db")
    token = csrf_of(dana)
    assert dana.goto(f"{site.url}/console/connections/new").status == 403
    form = {"csrf": token, "name": "rogue", "type": "api", "owners": "dana@example.org"}
    assert post(dana, site, "/console/connections/new", form) == 403
    assert post(dana, site, "/console/connections/hospital_db/edit", form) == 403


def test_get_external_datamodule_access(site, people):
    dana = people["dana"]
    dana.goto(f"{site.url}/console/connections")
    row = dana.get_by_role("row", name=re.compile("hospital_db"))
    expect(row).to_contain_text("no access")
    dana.get_by_role("link", name="hospital_db").click()
    named(dana)
    dana.get_by_label("Reason (the owners read it)").fill("Length-of-stay study, 2026.")
    shot(dana, "access-request")
    token = csrf_of(dana)
    dana.get_by_role("button", name="Request access").click()
    expect(dana.get_by_role("status")).to_contain_text(
        "sent to the owners of hospital_db (e-mailed to olga@example.org)"
    )
    expect(dana.locator("dl")).to_contain_text("pending")
    mail = site.inbox.messages[-1]
    assert mail["To"] == "olga@example.org" and "hospital_db" in mail["Subject"]
    assert "Length-of-stay study, 2026." in mail.get_content()
    # a second request while one is pending is refused; so is anyone not signed in
    expect(dana.get_by_role("button", name="Request access")).to_have_count(0)
    form = {"csrf": token, "reason": "again"}
    assert post(dana, site, "/console/connections/hospital_db/request", form) == 400
    page = dana.context.browser.new_context().new_page()
    resp = page.request.get(f"{site.url}/console/connections", max_redirects=0)
    assert resp.status in (302, 303, 307, 401)  # to the provider, or refused
    assert "hospital_db" not in resp.text()
    page.context.close()


def test_approve_external_datamodule_access(site, people):
    oscar = people["oscar"]  # a connection owner, but not of hospital_db
    oscar.goto(f"{site.url}/console/access")
    expect(oscar.get_by_role("button", name=re.compile("Approve request"))).to_have_count(0)
    dana = people["dana"]
    assert dana.goto(f"{site.url}/console/access").status == 403  # a viewer decides nothing
    olga = people["olga"]
    olga.goto(f"{site.url}/console/access")
    named(olga)
    request = olga.get_by_role("form", name=re.compile("Request \\d+"))
    expect(request).to_contain_text("Length-of-stay study, 2026.")
    request_id = re.search(r"Request (\d+)", request.get_attribute("aria-label")).group(1)
    token = token_of(oscar, site)
    path = f"/console/access/{request_id}/decide"
    assert post(oscar, site, path, {"csrf": token, "decision": "approve"}) == 403
    assert post(dana, site, path, {"csrf": "x", "decision": "approve"}) == 403
    shot(olga, "access-approve")
    olga.get_by_label("Note to the requester (optional)").fill("Granted for the study.")
    olga.get_by_role("button", name=f"Approve request {request_id}").click()
    expect(olga.get_by_role("status")).to_contain_text(
        f"Request {request_id} of dana@example.org approved (e-mailed to dana@example.org)"
    )
    mail = site.inbox.messages[-1]
    assert mail["To"] == "dana@example.org" and "approved" in mail["Subject"]
    assert "Granted for the study." in mail.get_content()
    dana.goto(f"{site.url}/console/connections/hospital_db")
    expect(dana.locator("dl")).to_contain_text("granted")
    # the grant stays until an owner revokes it; nobody else may
    assert post(oscar, site, f"/console/access/{request_id}/revoke", {"csrf": token}) == 403
    expect(olga.get_by_role("button", name=f"Revoke grant {request_id}")).to_be_visible()
    named(olga)


def test_manage_scripts_and_upload_metadata(site, people):
    tara = people["tara"]  # a task manager sees the scripts but may not release them
    tara.goto(f"{site.url}/console/scripts")
    expect(tara.get_by_role("button", name=re.compile("^Release"))).to_have_count(0)
    token = token_of(tara, site)
    form = {"csrf": token, "path": "scripts/legacy_his.py"}
    assert post(tara, site, "/console/modules/clinic/scripts/release", form) == 403

    ed = people["ed"]
    ed.goto(f"{site.url}/console/scripts")
    named(ed)
    clinic = ed.get_by_role("table", name="Scripts of clinic")
    expect(clinic.get_by_role("row", name=re.compile("legacy_his"))).to_contain_text("unreleased")
    shot(ed, "scripts")
    ed.get_by_role("button", name="Release scripts/legacy_his.py").click()
    expect(ed.get_by_role("status")).to_contain_text("Released clinic scripts/legacy_his.py")
    expect(clinic.get_by_role("row", name=re.compile("legacy_his"))).to_contain_text("released")

    folder = site.modules / "clinic"
    current = (folder / "module.jsonld").read_text()
    broken = current.replace('"onViolation"', '"strategy"', 1)
    ed.goto(f"{site.url}/console/modules/clinic/config")
    named(ed)
    versions = ed.get_by_role("table", name="Published versions and their metadata")
    expect(versions.get_by_role("row", name=re.compile("1.0.2 \\(current\\)"))).to_have_count(1)
    ed.get_by_label("From version").select_option("1.0.1")
    ed.get_by_label("To version").select_option("1.0.2")
    ed.get_by_role("button", name="Compare metadata").click()
    compared = ed.get_by_label("Metadata difference between 1.0.1 and 1.0.2")
    expect(compared).to_contain_text('-  "retentionDays": 30')
    expect(compared).to_contain_text('+  "retentionDays": 45')
    shot(ed, "config-history")
    ed.get_by_label("File name").select_option("module.jsonld")
    ed.get_by_label("Metadata file contents").fill(broken)
    ed.get_by_role("button", name="Validate and store draft").click()
    expected = "\n".join(validate_draft(folder, "module.jsonld", broken).errors)
    assert "unknown key" in expected
    expect(ed.get_by_label("Validation errors")).to_have_text(expected)
    shot(ed, "config-upload-errors")
    changed = current.replace("anonymized for research", "anonymized for research (v2)", 1)
    ed.get_by_label("Metadata file contents").fill(changed)
    ed.get_by_role("button", name="Validate and store draft").click()
    expect(ed.get_by_role("status")).to_contain_text("not loaded until a task editor releases it")
    diff = ed.get_by_label("Difference to the loaded metadata")
    expect(diff).to_contain_text('+  "description": "Wards, patients and visits')
    changes = [
        ln for ln in diff.inner_text().splitlines() if ln[:1] in "+-" and ln[:3] not in "+++---"
    ]
    assert len(changes) == 2  # one line out, one in: the browser's CRLF line ends are undone
    assert (folder / "module.jsonld").read_text() == current  # a draft is not loaded
    shot(ed, "config-draft")
    ed.get_by_role("button", name=re.compile("Release draft")).click()
    expect(ed.get_by_role("status")).to_contain_text("released as module.jsonld")
    assert (folder / "module.jsonld").read_text() == changed
    assert post(tara, site, "/console/modules/clinic/drafts", {"csrf": token, "text": "x"}) == 403
