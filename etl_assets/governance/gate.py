"""The run-start gate: with governance enabled, a module runs only when every connection its
metadata declares is in the registry and granted to each of the module's owners, and every
script it runs is released and unmodified. The first steps of a run (extraction, and the upload
of an upload run) call `check` before touching any source, so a refused run reads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import psycopg

from etl_assets import audit
from etl_assets.governance.connections import get_connection, has_access
from etl_assets.governance.scripts import script_states
from etl_assets.governance.store import ensure
from etl_assets.metadata.loader import LoadedModule
from etl_assets.metadata.module import Connection

_META_TYPES = get_args(Connection.model_fields["type"].annotation)


class GateRefused(RuntimeError):
    """The module may not run under governance; the message lists every reason."""


@dataclass(frozen=True)
class GateResult:
    module: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        """One line (a failed step's cause is shown as one line by `dmetl run`), every reason."""
        return f"governance refuses to run module {self.module!r}: " + "; ".join(self.problems)


def _connection_problems(
    conn: psycopg.Connection, module: str, owners: list[str], declared: Connection
) -> list[str]:
    registered = get_connection(conn, declared.name)
    if registered is None:
        return [
            f"connection {declared.name!r} is not in the connection registry: a task editor"
            " registers it (console → Connections) and its owners grant access"
        ]
    problems = []
    if registered.type in _META_TYPES and registered.type != declared.type:
        problems.append(
            f"connection {declared.name!r} is registered as {registered.type!r} but module"
            f" {module!r} declares it as {declared.type!r}"
        )
    for owner in owners:
        if not has_access(conn, registered, owner):
            problems.append(
                f"missing grant: connection {declared.name!r} for {owner} (an owner of module"
                f" {module!r}), request access and an owner of {declared.name!r}"
                f" ({', '.join(registered.owners)}) approves it"
            )
    return problems


def evaluate(conn: psycopg.Connection, loaded: LoadedModule) -> GateResult:
    """Every reason the module may not run under governance (none: it may)."""
    ensure(conn)
    model = loaded.model
    problems: list[str] = []
    if model.connections and not model.owners:
        problems.append(
            f"module {model.name!r} declares connections but no owners, so no grant can cover"
            " them: add owners to its metadata"
        )
    for declared in model.connections:
        problems.extend(_connection_problems(conn, model.name, list(model.owners), declared))
    for state in script_states(conn, model, loaded.folder):
        if problem := state.problem():
            problems.append(problem)
    return GateResult(model.name, tuple(problems))


def check(
    conn: psycopg.Connection, loaded: LoadedModule, *, version: str, run_id: str | None = None
) -> None:
    """Raise `GateRefused` (and audit the refusal) when the module may not run."""
    result = evaluate(conn, loaded)
    if result.ok:
        return
    if run_id is None or run_id not in _AUDITED:  # one event per run for the steps in a process
        if run_id is not None:
            _AUDITED.add(run_id)
        _audit_refusal(conn, loaded, result, version, run_id)
    raise GateRefused(result.message())


_AUDITED: set[str] = set()


def _audit_refusal(
    conn: psycopg.Connection,
    loaded: LoadedModule,
    result: GateResult,
    version: str,
    run_id: str | None,
) -> None:
    with conn.transaction():
        audit.record(
            conn, actor="system", role="governance", action=audit.Action.RUN_REFUSED,
            target=audit.Target(module=loaded.name, version=version, run=run_id),
            outcome=audit.Outcome.DENIED, detail={"problems": list(result.problems)},
        )  # fmt: skip
