"""deploy/Dockerfile, checked without a Docker engine: what it copies exists and is what the
package needs, it runs as a non-root user with no secret and no ENTRYPOINT, its command is the
code location's gRPC server; and its install step (a regular `pip install .` of exactly the files
it copies) ships the package data the code location loads at start."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile

from tests.conftest import ROOT
from tests.deploy_support import DEPLOY, load_yaml

DOCKERFILE = DEPLOY / "Dockerfile"
SECRET_NAME = re.compile(r"(?i)(password|secret|token|_key$|credential)")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def copies(stage: list[tuple[str, str]]) -> list[list[str]]:
    """The source paths of each COPY from the build context (not from another stage)."""
    out = []
    for word, args in stage:
        if word == "COPY":
            parts = [p for p in shlex.split(args) if not p.startswith("--chown")]
            if not parts[0].startswith("--from"):
                out.append(parts[:-1])
    return out


def test_runs_the_code_location_as_a_non_root_user():
    stage = final_stage()
    users = [args for word, args in stage if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert not any(word == "ENTRYPOINT" for word, _ in instructions())
    [cmd] = [json.loads(args) for word, args in stage if word == "CMD"]
    workspace = load_yaml(ROOT / "workspace.yaml")["load_from"][0]["python_module"]
    assert cmd[:3] == ["dagster", "api", "grpc"]
    assert cmd[cmd.index("-m") + 1] == workspace["module_name"]
    assert cmd[cmd.index("-a") + 1] == workspace["attribute"]
    assert f"EXPOSE {cmd[cmd.index('-p') + 1]}" in DOCKERFILE.read_text()


def test_python_and_the_packages_match_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    args = dict(a.split("=", 1) for w, a in instructions() if w == "ARG" and "=" in a)
    assert pyproject["project"]["requires-python"] == f">={args['PYTHON_VERSION']}"
    copied = {src for group in copies(instructions()) for src in group}
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= copied
    for src in copied:
        assert (ROOT / src).exists(), src


def test_no_secrets_and_modules_where_the_deployment_looks():
    env = {}
    for word, args in instructions():
        if word in ("ENV", "ARG"):
            for name, _, value in (p.partition("=") for p in shlex.split(args)):
                assert not SECRET_NAME.search(name), f"{word} {name}"
                env[name] = value
    copied = copies(final_stage())
    targets = {
        src: args.split()[-1]
        for word, args in final_stage()
        if word == "COPY"
        for src in shlex.split(args)[:-1]
    }
    assert ["datamodules"] in copied
    assert targets["datamodules"] == env["DM_MODULES_DIR"]
    assert env["DM_DEPLOYMENT"] == "prod"
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".dagster_home", ".git", "deploy/*.env"} <= set(ignored)


def test_install_step_ships_the_package_data(tmp_path):
    """The build stage's `pip install .` on the files the Dockerfile copies, as a wheel."""
    context = tmp_path / "src"
    context.mkdir()
    steps = instructions()
    froms = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    for group in copies(steps[froms[0] : froms[1]]):
        for src in group:
            (shutil.copytree if (ROOT / src).is_dir() else shutil.copy)(ROOT / src, context / src)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(context)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "etl_assets/metadata/context/datamodule-v1.jsonld" in names
    assert "etl_assets/templates/module/module.yaml" in names
    assert "etl_assets/definitions.py" in names and "resources/deployment/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dmetl = etl_assets.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
