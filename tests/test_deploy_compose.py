"""deploy/compose.yaml against the Compose Specification's schema, and against the parts it must
agree with: the image, the instance and workspace files, the code location, the secrets file."""

from __future__ import annotations

import json
import re
import subprocess

import jsonschema
import pytest

from tests.conftest import ROOT
from tests.deploy_support import DEPLOY, load_yaml

COMPOSE = DEPLOY / "compose.yaml"
SPEC = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
HOME = "/opt/dagster/dagster_home"
SECRET_KEY = re.compile(r"(?i)(password|secret|token|_key$|_key_id$|_url$)")


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE)


def mounts(service: dict) -> dict[str, str]:
    """Container path -> source of each volume of a service."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        out[target] = source
    return out


def test_matches_the_compose_specification(compose):
    jsonschema.Draft7Validator(SPEC).validate(compose)


def test_one_node_services(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "code-location", "webserver", "daemon"}
    for name in ("code-location", "webserver", "daemon"):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert service["environment"]["DAGSTER_HOME"] == HOME
        source = mounts(service)[f"{HOME}/dagster.yaml"]
        assert (DEPLOY / source).resolve() == DEPLOY / "dagster.compose.yaml"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    # the stock webserver has no sign-in: loopback only
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert services["webserver"]["command"][0] == "dagster-webserver"


def test_webserver_and_daemon_reach_the_code_location_server(compose):
    services = compose["services"]
    [entry] = load_yaml(DEPLOY / "workspace.compose.yaml")["load_from"]
    server = entry["grpc_server"]
    assert server["host"] == "code-location"
    # the code-location server is the image's CMD, on the port the workspace names
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    assert "command" not in services["code-location"]
    assert cmd[cmd.index("-p") + 1] == str(server["port"])
    assert services["code-location"]["healthcheck"]["test"][-1] == str(server["port"])
    local = load_yaml(ROOT / "workspace.yaml")["load_from"][0]["python_module"]
    assert server["location_name"] == local["location_name"]
    assert cmd[cmd.index("-m") + 1] == local["module_name"]
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        workspace = command[command.index("-w") + 1]
        assert (DEPLOY / mounts(services[name])[workspace]).resolve() == (
            DEPLOY / "workspace.compose.yaml"
        )


def test_runs_see_the_outbox_and_step_storage(compose):
    """Runs are processes of the code-location container (DefaultRunLauncher), so that container
    holds the outbox and the step storage, as named volumes."""
    instance = load_yaml(DEPLOY / "dagster.compose.yaml")
    assert instance["run_launcher"]["class"] == "DefaultRunLauncher"
    service = compose["services"]["code-location"]
    env = service["environment"]
    volumes = mounts(service)
    for var in ("DM_OUTBOX_ROOT", "DM_STORAGE_ROOT"):
        assert volumes[env[var]] in compose["volumes"], var


def test_secrets_come_from_an_uncommitted_env_file(compose):
    files = {f["path"] for s in compose["services"].values() for f in s.get("env_file", [])}
    assert files == {"./compose.env"}
    tracked = subprocess.run(
        ["git", "ls-files", "deploy"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "deploy/compose.env" not in tracked
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/compose.env"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "deploy/compose.env must be git-ignored"
    # the example lists the variables with empty values
    example = (DEPLOY / "compose.env.example").read_text().splitlines()
    assignments = [line.split("=", 1) for line in example if line and not line.startswith("#")]
    secrets = [k for k, _ in assignments if SECRET_KEY.search(k)]
    assert {"POSTGRES_PASSWORD", "DAGSTER_PG_URL", "DM_POSTGRES_URL"} <= set(secrets)
    assert all(v == "" for k, v in assignments if k in secrets)
    # and the compose file sets none of them itself
    for service in compose["services"].values():
        for key in service.get("environment", {}):
            assert not SECRET_KEY.search(key), key
