"""Governance backend: the connection registry, access requests and grants (with e-mail through
a real SMTP server on loopback), script releases, and the run-start gate refusing a run."""

from __future__ import annotations

import json

import psycopg
import pytest
import yaml

from etl_assets import audit
from etl_assets.cli import main
from etl_assets.governance import connections as reg
from etl_assets.governance import notify
from etl_assets.governance.connections import Actor, ConnectionSpec, GovernanceError
from etl_assets.governance.gate import evaluate
from etl_assets.metadata.loader import load_module
from resources.deployment import Deployment, smtp_settings
from tests.servers import smtp_server  # noqa: F401 - fixture

EDITOR = Actor("ed@example.org", "task_editor")
OWNER = Actor("olga@example.org", "connection_owner")
USER = Actor("dana@example.org", "viewer")
SPEC = {
    "name": "hospital_db",
    "type": "postgres",
    "description": "Admissions of the hospital, one row per stay; updated nightly.",
    "contract_url": "https://data.example.org/hospital/croissant.json",
    "secret_env": "HOSPITAL_DB_URL",
    "owners": ["olga@example.org", "team:hospital-it"],
}


@pytest.fixture
def conn(pg_url, dagster_home):
    with psycopg.connect(pg_url, autocommit=True) as c:
        yield c


def test_a_connection_is_validated_and_names_its_secret_variable_only(conn):
    with pytest.raises(GovernanceError) as exc:
        ConnectionSpec.parse({**SPEC, "type": "ftp", "secret_env": "lower", "owners": ["bob"]})
    text = str(exc.value)
    assert "type: expected one of postgres" in text
    assert "secret_env: String should match pattern" in text
    assert "owners: owners must be e-mail addresses or team:<name>, got ['bob']" in text
    saved = reg.save_connection(conn, ConnectionSpec.parse(SPEC), EDITOR, create=True)
    assert saved.owners == ("olga@example.org", "team:hospital-it")
    assert saved.secret_env == "HOSPITAL_DB_URL"
    with pytest.raises(GovernanceError, match="exists already"):
        reg.save_connection(conn, ConnectionSpec.parse(SPEC), EDITOR, create=True)
    edited = reg.save_connection(
        conn, ConnectionSpec.parse({**SPEC, "description": "v2"}), EDITOR, create=False
    )
    assert edited.description == "v2" and edited.updated_by == EDITOR.name
    with pytest.raises(GovernanceError, match="no connection named 'nope'"):
        reg.save_connection(
            conn, ConnectionSpec.parse({**SPEC, "name": "nope"}), EDITOR, create=False
        )
    actions = [r["action"] for r in audit.query(conn, user=EDITOR.name)]
    assert actions == ["connection.edit", "connection.create"]


def test_owners_decide_requests_and_an_approval_is_a_grant(conn):
    connection = reg.save_connection(conn, ConnectionSpec.parse(SPEC), EDITOR, create=True)
    with pytest.raises(GovernanceError, match="reason: say why"):
        reg.request_access(conn, "hospital_db", USER, "  ")
    request = reg.request_access(conn, "hospital_db", USER, "length-of-stay study")
    assert request.status == "pending" and request.grantee == USER.name
    with pytest.raises(GovernanceError, match="pending already"):
        reg.request_access(conn, "hospital_db", USER, "again")
    assert not reg.has_access(conn, connection, USER.name)
    with pytest.raises(GovernanceError, match="only the owners of 'hospital_db'"):
        reg.decide(conn, request.id, Actor("mallory@example.org", "connection_owner"), True)
    decided = reg.decide(conn, request.id, OWNER, True, "ok for the study")
    assert decided.status == "approved" and decided.decided_by == OWNER.name
    assert reg.has_access(conn, connection, USER.name)
    with pytest.raises(GovernanceError, match="approved by olga@example.org already"):
        reg.decide(conn, request.id, OWNER, False)
    assert reg.has_access(conn, connection, "olga@example.org")  # owners hold access
    assert [r.id for r in reg.list_requests(conn, owner=OWNER.name)] == [request.id]
    events = audit.query(conn, action="access.decide")
    assert json.loads(events[0]["body"])["detail"]["decision"] == "approved"
    with pytest.raises(GovernanceError, match="only the owners of 'hospital_db'"):
        reg.revoke(conn, request.id, USER)
    assert reg.revoke(conn, request.id, OWNER, "study over").status == "revoked"
    assert not reg.has_access(conn, connection, USER.name)
    with pytest.raises(GovernanceError, match="is revoked, not a grant"):
        reg.revoke(conn, request.id, OWNER)
    again = reg.request_access(conn, "hospital_db", USER, "follow-up study")  # may ask again
    assert again.status == "pending"


def test_requester_and_owners_are_notified_by_email(conn, smtp_server):  # noqa: F811
    port, inbox = smtp_server
    settings = smtp_settings({"DM_SMTP_HOST": "127.0.0.1", "DM_SMTP_PORT": str(port),
                              "DM_SMTP_FROM": "etl@example.org"})  # fmt: skip
    connection = reg.save_connection(conn, ConnectionSpec.parse(SPEC), EDITOR, create=True)
    request = reg.request_access(conn, "hospital_db", USER, "length-of-stay study")
    sent = notify.request_to_owners(settings, connection, request, "http://console/x")
    assert sent.sent and sent.recipients == ("olga@example.org",)  # a team has no mailbox
    decided = reg.decide(conn, request.id, OWNER, False, "use the published module")
    assert notify.decision_to_requester(settings, decided).sent
    to_owner, to_user = inbox.messages
    assert to_owner["To"] == "olga@example.org" and to_owner["From"] == "etl@example.org"
    assert "Access request" in to_owner["Subject"] and "hospital_db" in to_owner["Subject"]
    assert "length-of-stay study" in to_owner.get_content()
    assert "http://console/x" in to_owner.get_content()
    assert to_user["To"] == USER.name and "denied" in to_user["Subject"]
    assert "use the published module" in to_user.get_content()
    off = notify.request_to_owners(smtp_settings({}), connection, request)
    assert not off.sent and "DM_SMTP_HOST is unset" in off.note


def test_governance_is_on_in_prod_and_switchable():
    base = {"DM_POSTGRES_URL": "postgresql://x@127.0.0.1/x"}
    assert not Deployment.from_environ(base).governance
    assert Deployment.from_environ({**base, "DM_GOVERNANCE": "1"}).governance
    assert Deployment.from_environ({**base, "DM_DEPLOYMENT": "prod"}).governance
    assert not Deployment.from_environ(
        {**base, "DM_DEPLOYMENT": "prod", "DM_GOVERNANCE": "0"}
    ).governance


# --- the gate and the script CLI, through `dmetl` --------------------------------------------


@pytest.fixture
def governed_shop(tmp_path, dagster_home, pg_url, monkeypatch):
    """`dmetl new shop` owned by one user, declaring a connection, with governance enabled."""
    monkeypatch.setenv("DM_POSTGRES_URL", pg_url)
    monkeypatch.setenv("DM_MODULES_DIR", str(tmp_path))
    monkeypatch.setenv("DM_GOVERNANCE", "1")
    assert main(["new", "shop"]) == 0
    meta = tmp_path / "shop" / "module.yaml"
    doc = yaml.safe_load(meta.read_text())
    doc["owners"] = ["sam@example.org"]
    doc["connections"] = [{"name": "hospital_db", "type": "postgres", "urlEnv": "HOSPITAL_DB_URL"}]
    meta.write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp_path / "shop"


def test_a_governed_run_refuses_missing_grants_and_unreleased_scripts(
    governed_shop, pg_url, capsys
):
    assert main(["run", "shop"]) == 1
    out = capsys.readouterr().err
    assert "governance refuses to run module 'shop'" in out
    assert "connection 'hospital_db' is not in the connection registry" in out
    assert "script scripts/extra_items.py of module 'shop' is not released" in out
    with psycopg.connect(pg_url, autocommit=True) as conn:
        reg.save_connection(conn, ConnectionSpec.parse(SPEC), EDITOR, create=True)
        refused = audit.query(conn, action="run.refused")
        assert [r["outcome"] for r in refused] == ["denied"]  # one event for the run's 2 steps
    assert main(["run", "shop"]) == 1
    out = capsys.readouterr().err
    assert "missing grant: connection 'hospital_db' for sam@example.org" in out
    assert main(["connection", "list"]) == 0
    listed = capsys.readouterr().out
    assert (
        "hospital_db" in listed
        and "HOSPITAL_DB_URL" in listed
        and "run-start gate: enforced" in listed
    )
    assert "  shop: refused\n    - missing grant: connection 'hospital_db'" in listed
    with psycopg.connect(pg_url, autocommit=True) as conn:
        request = reg.request_access(
            conn, "hospital_db", Actor("sam@example.org", "viewer"), "shop"
        )
        reg.decide(conn, request.id, OWNER, True)
    assert main(["script", "list", "shop"]) == 0
    assert "scripts/extra_items.py" in capsys.readouterr().out.split("unreleased")[0]
    assert main(["script", "release", "shop", "scripts/nope.py"]) == 1
    assert "runs no script 'scripts/nope.py' (its scripts: scripts/extra_items.py)" in (
        capsys.readouterr().err
    )
    assert main(["script", "release", "shop", "scripts/extra_items.py", "--by", "ed@x.org"]) == 0
    assert "released shop scripts/extra_items.py (sha256 " in capsys.readouterr().out
    assert main(["run", "shop"]) == 0
    assert "shop 0.1.3: succeeded" in capsys.readouterr().out  # the refused runs had 0.1.1-2


def test_a_modified_script_refuses_to_run_naming_both_hashes(governed_shop, pg_url, capsys):
    doc = yaml.safe_load((governed_shop / "module.yaml").read_text())
    doc["connections"] = []
    (governed_shop / "module.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["script", "release", "shop", "scripts/extra_items.py"]) == 0
    released = capsys.readouterr().out.split("sha256 ")[1][:12]
    script = governed_shop / "scripts" / "extra_items.py"
    script.write_text(script.read_text() + "\n# changed after the release\n")
    assert main(["script", "list", "shop"]) == 0
    assert " modified " in capsys.readouterr().out
    assert main(["run", "shop"]) == 1
    out = capsys.readouterr().err
    assert "script scripts/extra_items.py of module 'shop' was modified since its release" in out
    assert f"expected sha256 {released}…, found " in out
    with psycopg.connect(pg_url, autocommit=True) as conn:
        event = audit.query(conn, action="script.release")[0]
    assert event["module"] == "shop" and event["outcome"] == "ok"


def test_the_gate_names_a_type_the_registry_disagrees_with(governed_shop, pg_url):
    loaded = load_module(governed_shop)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        reg.save_connection(
            conn, ConnectionSpec.parse({**SPEC, "type": "mysql"}), EDITOR, create=True
        )
        problems = evaluate(conn, loaded).problems
        assert any(
            "registered as 'mysql' but module 'shop' declares it as 'postgres'" in p
            for p in problems
        )
        # an external data module reached through a postgres connection is no contradiction
        spec = ConnectionSpec.parse({**SPEC, "type": "datamodule"})
        reg.save_connection(conn, spec, EDITOR, create=False)
        assert not any("registered as" in p for p in evaluate(conn, loaded).problems)
