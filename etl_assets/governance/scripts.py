"""A module's scripts (extraction entries and the upload script), their sha256 and releases.

Releasing a script pins the sha256 of its bytes as they are now, with who and when; the newest
release of a (module, path) is its released state. A script is `released` when its file still
has the pinned hash, `modified` when it changed since, `unreleased` when never released, and
`missing` when its file is gone. With governance enabled a run refuses anything not `released`
(see `gate`), so what runs in production is what a task editor released.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import psycopg

from etl_assets import audit
from etl_assets.governance.connections import Actor, GovernanceError
from etl_assets.governance.store import SCHEMA, ensure
from etl_assets.metadata import DataModule, ScriptCollector

PREFIX = 12  # hex digits of a hash shown in messages


@dataclass(frozen=True)
class ModuleScript:
    """One script file of a module and what uses it (tables it extracts, or the upload)."""

    path: str  # as the metadata names it, relative to the module folder
    uses: tuple[str, ...]  # "extract <table>/<source>" or "upload"


@dataclass(frozen=True)
class ScriptState:
    module: str
    script: ModuleScript
    sha256: str | None  # of the file now (None: missing)
    released_sha256: str | None
    released_by: str | None
    released_at: dt.datetime | None

    @property
    def path(self) -> str:
        return self.script.path

    @property
    def state(self) -> str:
        if self.sha256 is None:
            return "missing"
        if self.released_sha256 is None:
            return "unreleased"
        return "released" if self.released_sha256 == self.sha256 else "modified"

    def problem(self) -> str | None:
        """Why this script may not run under governance, naming it and both hash prefixes."""
        where = f"script {self.path} of module {self.module!r}"
        found = (self.sha256 or "")[:PREFIX]
        if self.state == "released":
            return None
        if self.state == "missing":
            return f"{where} is missing"
        if self.state == "unreleased":
            return (
                f"{where} is not released (sha256 {found}…), a task editor releases it with"
                f" `dmetl script release {self.module} {self.path}`"
            )
        return (
            f"{where} was modified since its release by {self.released_by}: expected sha256"
            f" {(self.released_sha256 or '')[:PREFIX]}…, found {found}…, release it again"
        )


def module_scripts(model: DataModule) -> list[ModuleScript]:
    """Every script the module runs, once per file, in metadata order."""
    uses: dict[str, list[str]] = {}
    for entry in model.collection:
        if isinstance(entry.extract, ScriptCollector):
            uses.setdefault(entry.extract.path, []).append(f"extract {entry.table}/{entry.source}")
    if model.upload.script is not None:
        uses.setdefault(model.upload.script.path, []).append("upload")
    return [ModuleScript(path, tuple(u)) for path, u in uses.items()]


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def script_states(conn: psycopg.Connection, model: DataModule, folder: Path) -> list[ScriptState]:
    """Each script of the module with its hash now and its newest release."""
    ensure(conn)
    rows = conn.execute(
        f"""SELECT DISTINCT ON (path) path, sha256, released_by, released_at
            FROM {SCHEMA}.script_releases WHERE module = %s
            ORDER BY path, released_at DESC""",
        (model.name,),
    ).fetchall()
    released = {r[0]: r[1:] for r in rows}
    states = []
    for script in module_scripts(model):
        pinned, by, at = released.get(script.path, (None, None, None))
        states.append(
            ScriptState(model.name, script, file_sha256(folder / script.path), pinned, by, at)
        )
    return states


def release_script(
    conn: psycopg.Connection, model: DataModule, folder: Path, path: str, actor: Actor
) -> ScriptState:
    """Pin the script's current sha256 as released (audited); the path as the metadata names it."""
    states = {s.path: s for s in script_states(conn, model, folder)}
    if path not in states:
        known = ", ".join(states) or "none"
        raise GovernanceError(
            f"module {model.name!r} runs no script {path!r} (its scripts: {known})"
        )
    state = states[path]
    if state.sha256 is None:
        raise GovernanceError(f"script {path} of module {model.name!r}: file not found")
    with conn.transaction():
        conn.execute(
            f"""INSERT INTO {SCHEMA}.script_releases (module, path, sha256, released_by)
                VALUES (%s, %s, %s, %s)""",
            (model.name, path, state.sha256, actor.name),
        )
        audit.record(
            conn, actor=actor.name, role=actor.role, action=audit.Action.SCRIPT_RELEASE,
            target=audit.Target(module=model.name, name=f"script:{path}"),
            detail={"sha256": state.sha256, "previous": state.released_sha256},
        )  # fmt: skip
    return next(s for s in script_states(conn, model, folder) if s.path == path)
