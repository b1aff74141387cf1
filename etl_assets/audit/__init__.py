"""The tamper-evident audit log: who did what, to which module/version/run, and how it ended.

Other parts record events with one call, on a psycopg connection (the event commits with the
caller's transaction) or on the deployment's `PostgresResource` (it commits at once)::

    from etl_assets import audit
    audit.record(conn, actor="ana@example.org", role="task_manager",
                 action=audit.Action.APPROVAL, target=audit.Target(module="clinic", version="1.0.4"),
                 outcome=audit.Outcome.OK, detail={"comment": "checked"})

The vocabulary is `Action` / `Outcome` (etl_assets/audit/actions.py, listed in docs/security.md).
`detail` must never hold a secret or a restricted value (raw or clean data, quarantine rows).
The HMAC key comes from the deployment (`DM_AUDIT_HMAC_KEY`), never from the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import psycopg

from etl_assets.audit import checkpoints
from etl_assets.audit.actions import Action, Outcome
from etl_assets.audit.chain import Problem
from etl_assets.audit.store import Target, distinct_values, ensure, get, head, query, search
from etl_assets.audit.store import record as record_with_key
from etl_assets.audit.verify import Verdict, verify
from resources.deployment import AuditSettings, audit_settings, current
from resources.postgres import PostgresResource

__all__ = [
    "Action",
    "Outcome",
    "Problem",
    "Target",
    "Verdict",
    "checkpoints",
    "current_settings",
    "distinct_values",
    "ensure",
    "get",
    "head",
    "query",
    "record",
    "record_with_key",
    "search",
    "verify",
]


@lru_cache(maxsize=1)
def current_settings() -> AuditSettings:
    """This process's audit settings, read once from the deployment."""
    return audit_settings(current())


def record(
    conn: psycopg.Connection | PostgresResource,
    *,
    actor: str,
    role: str,
    action: Action | str,
    target: Target | Mapping[str, str] | None = None,
    outcome: Outcome | str = Outcome.OK,
    detail: Mapping[str, Any] | None = None,
    key: bytes | None = None,
) -> int:
    """Append one event (see the module docstring); returns its sequence number."""
    return record_with_key(
        conn,
        key=key if key is not None else current_settings().hmac_key,
        actor=actor,
        role=role,
        action=action,
        target=target,
        outcome=outcome,
        detail=detail,
    )
