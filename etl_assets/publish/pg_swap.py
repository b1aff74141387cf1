"""Switching `<schema>.<table>` to a version's own relation without making readers wait for the
load.

A version's tables are loaded into `<schema>__staging` (a schema nobody but the uploader can
read) in a transaction of their own, which holds no lock a consumer waits on. The swap then moves
them into `<schema>` and points each view at its version with `CREATE OR REPLACE VIEW`, in one
short transaction: readers of `<schema>.<table>` (and of views built on it) wait at most for that
transaction, and see the old version or the new one, never a mix.

`CREATE OR REPLACE VIEW` keeps dependent views working but can only keep or add columns. The
view keeps the current column order and appends new columns; a version that drops a column or
changes a column's type needs the view dropped and created again, which PostgreSQL refuses while
other views depend on it: then the upload fails before loading, naming those views.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from etl_assets.errors import UploadError

STAGING_SUFFIX = "__staging"
Columns = list[tuple[str, str]]  # (name, PostgreSQL type as format_type prints it)


class SwapError(UploadError):
    """The current view cannot be switched to the new version (says why and what to do)."""


def staging_schema(schema: str) -> str:
    return f"{schema}{STAGING_SUFFIX}"


def drop_stale_staging(cur: psycopg.Cursor, schema: str, tables: list[str]) -> list[str]:
    """Drop what killed uploads left in `<schema>__staging` for these tables (any version;
    the caller holds the module's upload lock, so no upload is using them); returns them."""
    staging = staging_schema(schema)
    cur.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind = 'r'",
        (staging,),
    )
    patterns = [re.compile(re.escape(t) + r"__v\d+_\d+_\d+") for t in tables]
    stale = [r[0] for r in cur.fetchall() if any(p.fullmatch(r[0]) for p in patterns)]
    for name in stale:
        cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(staging, name)))
    return stale


def relation_columns(cur: psycopg.Cursor, schema: str, name: str) -> tuple[str, Columns] | None:
    """(relkind, columns) of `schema.name`, or None when there is no such relation."""
    cur.execute(
        """SELECT c.relkind, a.attname, format_type(a.atttypid, a.atttypmod)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           WHERE n.nspname = %s AND c.relname = %s ORDER BY a.attnum""",
        (schema, name),
    )
    rows = cur.fetchall()
    if not rows:
        return None
    return rows[0][0], [(n, t) for _, n, t in rows if n is not None]


def dependents(cur: psycopg.Cursor, schema: str, name: str) -> list[tuple[str, str]]:
    """(schema, name) of the views (and materialized views) that select from `schema.name`."""
    cur.execute(
        """SELECT DISTINCT dn.nspname, dv.relname
           FROM pg_depend d
           JOIN pg_rewrite r ON r.oid = d.objid
           JOIN pg_class dv ON dv.oid = r.ev_class
           JOIN pg_namespace dn ON dn.oid = dv.relnamespace
           WHERE d.classid = 'pg_rewrite'::regclass
             AND d.refobjid = (SELECT c.oid FROM pg_class c
                               JOIN pg_namespace n ON n.oid = c.relnamespace
                               WHERE n.nspname = %s AND c.relname = %s)
             AND dv.oid <> d.refobjid
           ORDER BY 1, 2""",
        (schema, name),
    )
    return [(r[0], r[1]) for r in cur.fetchall()]


def _names(relations: list[tuple[str, str]]) -> str:
    return ", ".join(f"{s}.{n}" for s, n in relations)


def view_columns(current: Columns, new: Columns) -> tuple[list[str], list[str]]:
    """The column order that lets `CREATE OR REPLACE VIEW` keep the current view's columns
    (theirs first, new ones appended), and what stops it (dropped or retyped columns)."""
    new_types = dict(new)
    problems = []
    for name, typ in current:
        if name not in new_types:
            problems.append(f"column {name} is gone")
        elif new_types[name] != typ:
            problems.append(f"column {name} changes from {typ} to {new_types[name]}")
    if problems:
        return [n for n, _ in new], problems
    kept = {n for n, _ in current}
    return [n for n, _ in current] + [n for n, _ in new if n not in kept], []


@dataclass(frozen=True)
class ViewPlan:
    """How `<schema>.<table>` will be switched: created, replaced in place, or recreated."""

    action: str  # "create" | "replace" | "recreate"
    columns: list[str]
    problems: list[str]


def plan_view(cur: psycopg.Cursor, schema: str, name: str, version: str, new: Columns) -> ViewPlan:
    """How to point the view `schema.name` at a relation with columns `new`; a SwapError when
    it cannot be done without breaking someone's view."""
    found = relation_columns(cur, schema, name)
    if found is None:
        return ViewPlan("create", [n for n, _ in new], [])
    kind, current = found
    if kind != "v":
        raise SwapError(
            f"{schema}.{name} is not a view (relkind {kind!r}): the snapshot sink serves each"
            " table as a view of its current version; rename or drop that relation"
        )
    columns, problems = view_columns(current, new)
    if not problems:
        return ViewPlan("replace", columns, [])
    if deps := dependents(cur, schema, name):
        raise SwapError(
            f"{schema}.{name}: version {version} {'; '.join(problems)}, and the views"
            f" {_names(deps)} depend on it; CREATE OR REPLACE VIEW can only keep or add"
            " columns. Drop those views, publish the version, then create them again"
        )
    return ViewPlan("recreate", columns, problems)


def lock_view(cur: psycopg.Cursor, schema: str, name: str) -> None:
    """Take the view first (and, through it, its current table), as readers do: locking a table
    before the view it serves could deadlock with a reader holding the view."""
    found = relation_columns(cur, schema, name)
    if found is not None and found[0] == "v":
        cur.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(schema, name))
        )


def point_view(cur: psycopg.Cursor, schema: str, name: str, target: str, plan: ViewPlan) -> None:
    """Point the view `schema.name` at `schema.target` as `plan` says."""
    view = sql.Identifier(schema, name)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in plan.columns)
    select = sql.SQL("SELECT {} FROM {}").format(cols, sql.Identifier(schema, target))
    if plan.action == "recreate":
        cur.execute(sql.SQL("DROP VIEW {}").format(view))
    verb = "CREATE OR REPLACE VIEW" if plan.action == "replace" else "CREATE VIEW"
    cur.execute(sql.SQL(verb + " {} AS {}").format(view, select))


def check_replaceable(cur: psycopg.Cursor, schema: str, relation: str, live: str) -> None:
    """Re-publishing a version replaces its relation: refuse when someone's view selects from
    it directly (dropping it would break that view). Our own view `schema.live` does not count:
    the swap points it at the replacement."""
    if deps := [d for d in dependents(cur, schema, relation) if d != (schema, live)]:
        raise SwapError(
            f"{schema}.{relation} cannot be replaced: {_names(deps)} select from it directly."
            f" Drop those views, re-publish, then create them again (or build them on the"
            f" view {schema}.<table>, which follows the current version)"
        )


def set_aside(cur: psycopg.Cursor, schema: str, relation: str, token: str) -> str | None:
    """Rename an existing `schema.relation` out of the way (re-publishing a version); returns
    its new name, dropped once the view points at the replacement."""
    if relation_columns(cur, schema, relation) is None:
        return None
    aside = f"_dm_replaced_{token}"
    cur.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            sql.Identifier(schema, relation), sql.Identifier(aside)
        )
    )
    return aside
