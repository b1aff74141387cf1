"""Retention: what expires and removing it, recorded. The scheduled jobs (schedules/retention.py)
call these.

- **Outbox retention**: a prepared version that was neither published nor approved is deleted
  from the outbox after the module's `retentionDays` (seed 003: "after the retention period, the
  system deletes the data").
- **Published-version retention**: with `keepPublished` (the N highest versions and/or those
  published less than D days ago), the data of older published versions is removed: their
  PostgreSQL relations (snapshot sink), their quarantine rows and their outbox folders. The
  registry row stays, in state `expired`. The current version is never removed.

Every removal is an audit event (`version.retention_delete`); it names the module, version,
relations and why, never a value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from etl_assets import audit, registry, semver
from etl_assets.connections import Lookup
from etl_assets.metadata import KeepPublished
from etl_assets.metadata.loader import LoadedModule
from etl_assets.publish.grants import restricted_schema
from etl_assets.publish.pg_swap import dependents
from etl_assets.publish.postgres import sink_target
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource

DAY = 86_400
ACTOR, ROLE = "system:retention", "system"


@dataclass(frozen=True)
class Expired:
    """A version whose data was removed (or could not be, with why)."""

    module: str
    version: str
    reason: str
    relations: list[str] = field(default_factory=list)
    error: str | None = None


# --- outbox retention ----------------------------------------------------------------------


def expire_outbox(
    modules: list[LoadedModule], outbox: OutboxResource, postgres: PostgresResource
) -> list[Expired]:
    """Delete unpublished, unapproved outbox versions older than their module's retention."""
    expired = []
    for loaded in modules:
        limit = loaded.model.retentionDays * DAY
        versions = outbox.versions(loaded.name)
        if not versions:
            continue
        with postgres.connect(autocommit=True) as conn:
            kept = registry.kept_versions(conn, loaded.name)
        for version in versions:
            age = None if version in kept else outbox.age_seconds(loaded.name, version)
            if age is None or age <= limit:
                continue
            outbox.delete_version(loaded.name, version)
            done = Expired(loaded.name, version, f"not published after {age / DAY:.1f} days")
            _audit(postgres, done, "outbox")
            expired.append(done)
    return expired


# --- published-version retention -----------------------------------------------------------


def to_expire(rows: list[dict[str, Any]], keep: KeepPublished, now: dt.datetime) -> list[dict]:
    """The registry rows (`list_versions`) whose data `keep` no longer keeps, each with a
    `reason`: published, not current, outside the N highest and older than D days."""
    published = [
        r for r in rows if r["state"] == registry.PUBLISHED and semver.is_version(r["version"])
    ]
    ranked = sorted(published, key=lambda r: semver.parse(r["version"]), reverse=True)
    top = {r["version"] for r in ranked[: keep.versions]} if keep.versions else set()
    out = []
    for r in ranked:
        age = now - r["published_at"]
        if r["current"] or r["version"] in top:
            continue
        if keep.days is not None and age < dt.timedelta(days=keep.days):
            continue
        why = []
        if keep.versions is not None:
            why.append(f"not among the {keep.versions} highest published versions")
        if keep.days is not None:
            why.append(f"published {age.total_seconds() / DAY:.1f} days ago (keep {keep.days})")
        out.append({**r, "reason": " and ".join(why)})
    return out


def expire_published(
    modules: list[LoadedModule],
    outbox: OutboxResource,
    postgres: PostgresResource,
    lookup: Lookup,
    now: dt.datetime | None = None,
) -> list[Expired]:
    """Remove the data of every published version its module's `keepPublished` lets go."""
    now = now or dt.datetime.now(dt.UTC)
    done = []
    for loaded in modules:
        keep = loaded.model.keepPublished
        if keep is None:
            continue
        with postgres.connect(autocommit=True) as conn:
            rows = registry.list_versions(conn, loaded.name)
        for row in to_expire(rows, keep, now):
            done.append(_remove(loaded, row, outbox, postgres, lookup))
    return done


def _relations(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(schema, name) of the version's own relations: only a snapshot sink's are its alone
    (append mode's table holds every version's records)."""
    if row["sink"] != "postgres:snapshot":
        return []
    pairs = [rel.split(".", 1) for rel in row["tables"].values() if "." in rel]
    return [(s, n) for s, n in pairs]


def _remove(
    loaded: LoadedModule,
    row: dict[str, Any],
    outbox: OutboxResource,
    postgres: PostgresResource,
    lookup: Lookup,
) -> Expired:
    """Check nobody's view needs the relations, delete the outbox folders, then drop the
    relations, delete the quarantine rows and mark the version expired, in one transaction."""
    module, version = loaded.name, row["version"]
    relations = _relations(row)
    names = [f"{s}.{n}" for s, n in relations]
    sink = loaded.model.upload.sink
    target, schema = postgres, ""
    if sink is not None and sink.type == "postgres":
        target, schema = sink_target(loaded.model, postgres, lookup)
    result = Expired(module, version, row["reason"], names)
    with target.connect(autocommit=True) as conn:
        if blocked := _blocked(conn, relations):
            failed = Expired(module, version, row["reason"], names, blocked)
            _audit(postgres, failed, "published")
            return failed
        outbox.delete_version(module, version)
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"dm_publish:{module}",))
            for s, n in relations:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(s, n)))
            if schema:
                _delete_quarantine(cur, schema, version)
            # the registry in the sink's database (the deployment's, or the connection's own)
            registry.expire_version(cur, module, version)
            if target is postgres:
                _audit(conn, result, "published")
    if target is not postgres:  # the sink's own database: now the deployment's registry
        with postgres.connect(autocommit=True) as conn, conn.transaction(), conn.cursor() as cur:
            registry.expire_version(cur, module, version)
            _audit(conn, result, "published")
    return result


def _blocked(conn: psycopg.Connection, relations: list[tuple[str, str]]) -> str | None:
    with conn.cursor() as cur:
        for s, n in relations:
            if deps := dependents(cur, s, n):
                views = ", ".join(f"{a}.{b}" for a, b in deps)
                return f"{s}.{n} is kept: the views {views} select from it; drop them to let it go"
    return None


def _delete_quarantine(cur: psycopg.Cursor, schema: str, version: str) -> None:
    cur.execute("SELECT to_regclass(%s)", (f'"{restricted_schema(schema)}".quarantine',))
    if cur.fetchone()[0] is not None:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE version = %s").format(
                sql.Identifier(restricted_schema(schema), "quarantine")
            ),
            (version,),
        )


def _audit(conn: psycopg.Connection | PostgresResource, done: Expired, kind: str) -> None:
    audit.record(
        conn,
        actor=ACTOR,
        role=ROLE,
        action=audit.Action.RETENTION_DELETE,
        target=audit.Target(module=done.module, version=done.version),
        outcome=audit.Outcome.ERROR if done.error else audit.Outcome.OK,
        detail={
            "kind": kind,
            "reason": done.reason,
            "relations": done.relations,
            **({"error": done.error} if done.error else {}),
        },
    )
