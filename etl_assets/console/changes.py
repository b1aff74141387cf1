"""Corrections of a prepared version (issue 12, item 3): a change set adds, edits and deletes
outbox records by key, with a reason; applying it rewrites the version's outbox tables, and the
blocking checks (keys, foreign keys, privacy models, conservation) run again on the result.

The change set format (the console's form and `dmetl outbox edit --file` share it)::

    {"changes": [
      {"table": "wards", "op": "add", "values": {"ward_id": "W9", "name": "Annex"}},
      {"table": "wards", "op": "edit", "key": {"ward_id": "W1"}, "values": {"name": "North"}},
      {"table": "wards", "op": "delete", "key": {"ward_id": "W2"}}]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from etl_assets.anonymize.table import verify_outbox_privacy
from etl_assets.clean.rules.checks import check_foreign_keys, check_unique_key
from etl_assets.console.outbox_view import key_text
from etl_assets.metadata import Table
from etl_assets.metadata.loader import LoadedModule

Scalar = str | int | float | bool | None


class ChangeSetError(ValueError):
    """A change set that cannot be applied; the message names the change, field and why."""


class Change(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: str
    op: Literal["add", "edit", "delete"]
    key: dict[str, Scalar] = Field(default_factory=dict)
    values: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self) -> Change:
        if self.op in ("edit", "delete") and not self.key:
            raise ValueError(f"an {self.op} needs the record's key")
        if self.op in ("add", "edit") and not self.values:
            raise ValueError(f"an {self.op} needs values")
        return self


class ChangeSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    changes: list[Change] = Field(min_length=1, max_length=10_000)

    @classmethod
    def parse(cls, data: object, where: str) -> ChangeSet:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ChangeSetError(f"{where}: {path}: {first['msg']}") from None


@dataclass
class TableSummary:
    """What a change set did to one table: counts and the keys touched (published-zone keys)."""

    rows_before: int
    added: int = 0
    edited: int = 0
    deleted: int = 0
    keys: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {
            "rows_before": self.rows_before, "added": self.added, "edited": self.edited,
            "deleted": self.deleted, "keys": list(self.keys),
        }  # fmt: skip


def correctable_tables(loaded: LoadedModule) -> dict[str, Table]:
    """Outbox tables a change set may touch: published as one table (not anatomized)."""
    return {t.published_names[0]: t for t in loaded.model.tables if len(t.published_names) == 1}


def _cast(value: Scalar, arrow_type: pa.DataType, where: str) -> object:
    if value is None:
        return None
    try:
        return pa.array([value]).cast(arrow_type)[0].as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        try:
            return pa.array([str(value)]).cast(arrow_type)[0].as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise ChangeSetError(f"{where}: {value!r} is not a {arrow_type}") from None


def _match(df: pd.DataFrame, key_cols: list[str], key: dict[str, Scalar], where: str) -> pd.Series:
    if sorted(key) != sorted(key_cols):
        raise ChangeSetError(f"{where}.key: expected the primary key ({', '.join(key_cols)})")
    wanted = " | ".join("∅" if key[k] is None else str(key[k]) for k in key_cols)
    hits = key_text(df, key_cols) == wanted
    if not hits.any():
        raise ChangeSetError(f"{where}.key: no record with key {wanted}")
    return hits


def apply_changes(
    frames: dict[str, pd.DataFrame], tables: dict[str, Table], changes: ChangeSet
) -> tuple[dict[str, pd.DataFrame], dict[str, TableSummary]]:
    """The corrected tables (only those touched) and what changed in each; nothing is written."""
    out: dict[str, pd.DataFrame] = {}
    summary: dict[str, TableSummary] = {}
    for i, change in enumerate(changes.changes):
        where = f"changes[{i}]"
        if change.table not in tables or change.table not in frames:
            known = ", ".join(sorted(set(tables) & set(frames))) or "none"
            raise ChangeSetError(
                f"{where}.table: {change.table!r} is not correctable (tables: {known})"
            )
        table = tables[change.table]
        df = out.get(change.table, frames[change.table])
        s = summary.setdefault(change.table, TableSummary(rows_before=len(frames[change.table])))
        schema = pa.Schema.from_pandas(df, preserve_index=False)
        unknown = [c for c in change.values if c not in df.columns]
        if unknown:
            raise ChangeSetError(f"{where}.values: unknown column(s) {', '.join(unknown)}")
        values = {
            c: _cast(v, schema.field(c).type, f"{where}.values.{c}")
            for c, v in change.values.items()
        }
        key_cols = list(table.primaryKey or [])
        if change.op != "add" and not key_cols:
            raise ChangeSetError(f"{where}: {change.table} has no primary key to find records by")
        if change.op == "add":
            row = pd.DataFrame([{c: values.get(c) for c in df.columns}]).astype(df.dtypes.to_dict())
            df = pd.concat([df, row], ignore_index=True)
            s.added += 1
            key = tuple(str(values.get(k)) for k in key_cols)
        else:
            hits = _match(df, key_cols, change.key, where)
            key = tuple(str(change.key[k]) for k in key_cols)
            if change.op == "delete":
                df = df[~hits].reset_index(drop=True)
                s.deleted += int(hits.sum())
            else:
                for c, v in values.items():
                    df.loc[hits, c] = v
                s.edited += int(hits.sum())
        if key_cols:
            s.keys = (*s.keys, " | ".join(key))
        out[change.table] = df
    return out, summary


@dataclass(frozen=True)
class CheckResult:
    check: str
    table: str
    passed: bool
    message: str

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def run_checks(
    loaded: LoadedModule, version: str, outbox, frames: dict[str, pd.DataFrame],
    summary: dict[str, TableSummary], reference=None,
) -> list[CheckResult]:  # fmt: skip
    """The blocking checks on the corrected outbox (already written): primary keys, foreign
    keys and the privacy models of every table, and conservation of the corrected tables.
    `reference(table)` gives a table's clean input for t-closeness (None: not available)."""
    results = []
    tables = correctable_tables(loaded)
    by_name = {t.name: frames[name] for name, t in tables.items() if name in frames}
    for name, table in tables.items():
        if name not in frames:
            continue
        data = frames[name]
        if table.primaryKey:
            ok, msg = check_unique_key(data, table)
            results.append(CheckResult("primary_key_unique", name, ok, msg))
        if any(c.foreignKey for c in table.columns):
            ok, msg = check_foreign_keys(data, table, by_name)
            results.append(CheckResult("foreign_keys_resolve", name, ok, msg))
        if table.privacy is not None:
            ref = reference(table) if reference else None
            ok, msg, _ = verify_outbox_privacy(outbox, loaded, table, version, reference=ref)
            results.append(CheckResult("privacy_models_hold", name, ok, msg))
    for name, s in summary.items():
        expected = s.rows_before + s.added - s.deleted
        rows = len(frames[name])
        ok = rows == expected
        msg = (
            f"{rows} rows = {s.rows_before} before + {s.added} added - {s.deleted} deleted"
            if ok
            else f"{rows} rows, expected {s.rows_before} + {s.added} - {s.deleted} = {expected}"
        )
        results.append(CheckResult("rows_conserved", name, ok, msg))
    return results
