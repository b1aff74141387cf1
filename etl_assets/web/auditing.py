"""The web layer's audit writer: one connection shared by the server's threads (events are
serialized by the log's head row anyway), reopened when it breaks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import psycopg

from etl_assets import audit
from etl_assets.web.identity import Principal
from resources.postgres import PostgresResource

log = logging.getLogger("dmetl.serve")


class Auditor:
    def __init__(self, postgres: PostgresResource, hmac_key: bytes):
        self._postgres = postgres
        self._key = hmac_key
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            url = self._postgres.resolved_url()
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        return self._conn

    def record(
        self,
        principal: Principal,
        action: audit.Action,
        *,
        target: audit.Target | None = None,
        outcome: audit.Outcome = audit.Outcome.OK,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one event for `principal`; retried once on a broken connection."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    return audit.record_with_key(
                        self._connection(),
                        key=self._key,
                        actor=principal.name,
                        role=principal.role_label,
                        action=action,
                        target=target,
                        outcome=outcome,
                        detail=detail,
                    )
                except psycopg.OperationalError:
                    if attempt == 2:
                        raise
                    log.warning("audit log connection lost; reconnecting")
                    self._conn = None
        raise AssertionError("unreachable")

    def head(self) -> tuple[int, bytes]:
        with self._lock:
            return audit.head(self._connection())

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
