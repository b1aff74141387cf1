"""Secret masking (issue 10.8): runs that use a PostgreSQL URL whose password holds an unescaped
`@`, `:` and `/`, and a script that echoes its token to stderr, succeed or fail — and none of
the secrets appears in anything a user can see: the CLI's output, the instance's event log, the
compute logs and every other file under DAGSTER_HOME (published outbox included)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import psycopg
import pytest

from resources.masking import Masker, normalize_url, redact_url
from tests.conftest import ROOT
from tests.helpers import CONTEXT, write_module
from tests.servers import free_port

BIN = Path(sys.executable).parent
# prints its records; echoes its token on stderr; fails when asked to
SOURCE = """import json, os, sys
print("using token", os.environ["DM_TEST_TOKEN"], file=sys.stderr)
if os.path.exists("fail"):
    sys.exit(1)
print(json.dumps([{"a": 1}, {"a": 2}]))
"""


def test_urls_with_special_characters_parse_and_redact():
    url = "postgresql://bob:p@ss:w/rd@db.example:5432/x"
    params = psycopg.conninfo.conninfo_to_dict(normalize_url(url))
    assert params["user"] == "bob" and params["password"] == "p@ss:w/rd"
    assert params["host"] == "db.example" and params["dbname"] == "x"
    assert redact_url(f"at {url} now") == "at postgresql://bob:***@db.example:5432/x now"
    mask = Masker([url, "host=h password=s3cr3t-pw"])
    text = mask(f"{url} / p@ss:w/rd / {quote('p@ss:w/rd', safe='')} / s3cr3t-pw")
    assert "p@ss" not in text and "s3cr3t" not in text and "%40" not in text


def module(name: str, url_env: str) -> dict:
    return {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": name,
        "version": "1.0.0",
        "autoUpload": True,
        "retry": {"maxRetries": 0},
        "connections": [{"name": "wh", "type": "postgres", "urlEnv": url_env}],
        "tables": [{"name": "t", "columns": [{"name": "a", "dataType": "integer"}]}],
        "collection": [
            {
                "table": "t",
                "source": "s",
                "extract": {"type": "script", "path": "s.py", "env": ["DM_TEST_TOKEN"]},
            }
        ],
        "upload": {"sink": {"type": "postgres", "connection": "wh", "schema": name}},
    }


@pytest.fixture
def secret_role(pg_server_url):
    """A login role whose password holds @, : and /, owning a database of its own."""
    tag = uuid.uuid4().hex[:8]
    role, password = f"dm_sec_{tag}", f"p@ss:w/rd-{tag}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {role} OWNER {role}")
    params = psycopg.conninfo.conninfo_to_dict(pg_server_url)
    host, port = params.get("host", "127.0.0.1"), params.get("port", 5432)
    yield role, password, f"postgresql://{role}:{password}@{host}:{port}/{role}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {role} WITH (FORCE)")
        conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_no_secret_in_anything_a_user_sees(tmp_path, pg_url, secret_role):
    role, password, url = secret_role
    token = f"tok-{uuid.uuid4().hex}"
    down = f"postgresql://{role}:{password}@127.0.0.1:{free_port()}/{role}"
    mods, home = tmp_path / "mods", tmp_path / "home"
    home.mkdir()
    write_module(mods / "vault", module("vault", "DM_TEST_VAULT_URL"), {"s.py": SOURCE})
    write_module(mods / "leaky", module("leaky", "DM_TEST_VAULT_URL"), {"s.py": SOURCE})
    (mods / "leaky" / "fail").write_text("")
    write_module(mods / "down", module("down", "DM_TEST_DOWN_URL"), {"s.py": SOURCE})
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DM_POSTGRES_URL": pg_url,
        "DM_MODULES_DIR": str(mods),
        "DM_TEST_TOKEN": token,
        "DM_TEST_VAULT_URL": url,
        "DM_TEST_DOWN_URL": down,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    outputs = {}
    for name in ("vault", "leaky", "down"):
        proc = subprocess.run(
            [str(BIN / "dmetl"), "run", name], env=env, capture_output=True, text=True, timeout=300
        )
        outputs[name] = (proc.returncode, proc.stdout + proc.stderr)
    assert outputs["vault"][0] == 0, outputs["vault"][1]  # the URL with @ : / was parsed right
    assert outputs["leaky"][0] == 1 and "script s.py exited with code 1" in outputs["leaky"][1]
    assert outputs["down"][0] == 1 and "failed step: down__upload" in outputs["down"][1]
    with psycopg.connect(normalize_url(url)) as conn:
        assert conn.execute("SELECT count(*) FROM vault.t").fetchone()[0] == 2

    secrets = [password, password.split("@", 1)[1], quote(password, safe=""), token]
    seen = {f"dmetl run {n}": text for n, (_, text) in outputs.items()}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for run in instance.get_runs():
            seen[f"event log of {run.run_id}"] = "\n".join(
                repr(e) for e in instance.all_logs(run.run_id)
            )
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any("compute_logs" in p.parts for p in files)
    assert any("published" in p.parts for p in files)
    for path in files:
        seen[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    leaks = [(where, s) for where, text in seen.items() for s in secrets if s in text]
    assert leaks == [], leaks


def test_dm_mask_env_names_more_values_to_mask(monkeypatch):
    from resources.deployment import Deployment, resources_for

    monkeypatch.setenv("DM_MASK_ENV", "DM_TEST_EXTRA, DM_TEST_OTHER")
    monkeypatch.setenv("DM_TEST_EXTRA", "extra-secret-value")
    monkeypatch.setenv("DM_TEST_PLAIN", "plain-value")
    secrets = resources_for(Deployment.from_environ())["secrets"]
    mask = secrets.masker(["DM_TEST_PLAIN"])
    assert mask("extra-secret-value and plain-value") == "*** and ***"
    assert secrets.masker()("plain-value") == "plain-value"  # not named: not masked
