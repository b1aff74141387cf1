"""The anonymize stage of one table: run the engine as the metadata declares, drop the records
whose parent was suppressed, and verify the outbox against the declared privacy models.

Randomized operations are keyed per record with the table's secret key (see `keyed.py`): an
unchanged record publishes the same value in every version, so re-running a version reproduces
it exactly and averaging versions gains nothing. Every record anonymization removes (suppressed
classes, children of suppressed parents) goes to the quarantine with its reason. Published
tables carry the declared columns only, never our `_dm_` bookkeeping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl_assets.anonymize import engine
from etl_assets.anonymize import hierarchy as hier
from etl_assets.anonymize.keyset import KeySet
from etl_assets.anonymize.module_spec import build_spec, generalization, needs_anonymization
from etl_assets.clean.coerce import arrow_dtype
from etl_assets.metadata import Anatomization, Generalization, Suppression, Table
from etl_assets.metadata.loader import LoadedModule
from etl_assets.quarantine import concat_quarantine, quarantine_rows
from etl_assets.results import ModelReached, PrivacyReached


@dataclass
class AnonymizeOutput:
    tables: dict[str, pd.DataFrame]
    metrics: dict[str, float] = field(default_factory=dict)
    summary: str = ""
    suppressed: int = 0
    quarantine: pd.DataFrame = field(default_factory=pd.DataFrame)
    """the records record suppression removed, as quarantine rows (rule anonymization)"""


def _restore_types(out: pd.DataFrame, table: Table, generalized: set[str]) -> pd.DataFrame:
    """Columns the engine left untouched keep their declared type; generalized ones are text
    (a month "1948-07" must not come back as the exact-looking date 1948-07-01)."""
    for col in table.columns:
        if col.name in generalized and col.name in out.columns:
            out[col.name] = out[col.name].astype("string[pyarrow]")
        elif col.name in out.columns and out[col.name].dtype == object:
            try:
                out[col.name] = out[col.name].astype(arrow_dtype(col.dataType))
            except (TypeError, ValueError, ArithmeticError):
                out[col.name] = out[col.name].astype("string[pyarrow]")
    return out


def _column_ops(table: Table, kind: type) -> list[tuple[str, object]]:
    return [(c.name, op) for c in table.columns for op in c.anonymization if isinstance(op, kind)]


def _fixed_levels(out: pd.DataFrame, table: Table, loaded: LoadedModule) -> dict[str, int]:
    """Generalize columns that are not quasi-identifiers to their declared level (capped at
    the hierarchy's top); returns the level applied to each."""
    qis = set(table.privacy.quasiIdentifiers) if table.privacy else set()
    done = {}
    for name, op in _column_ops(table, Generalization):
        if name in qis or name not in out.columns or op.level is None:
            continue
        if not len(out):  # no values to build a hierarchy from: the column is text, empty
            out[name] = out[name].astype("string[pyarrow]")
            continue
        h = hier.build(out[name], generalization(op, loaded.folder).as_config())
        level = min(op.level, h.levels - 1)
        out[name] = pd.Series(h.generalize(h.encode(out[name]), level), index=out.index).astype(
            "string[pyarrow]"
        )
        done[name] = int(level)
    return done


def _suppress_to_marker(out: pd.DataFrame, table: Table) -> None:
    """Cell suppression writes the declared marker, or null when none is declared."""
    for name, op in _column_ops(table, Suppression):
        if name in out.columns:
            out[name] = pd.Series(op.marker, index=out.index, dtype="string[pyarrow]")


def anonymize_for_module(
    clean: pd.DataFrame,
    table: Table,
    loaded: LoadedModule,
    version: str,
    key: bytes | None,
    memos: dict | None = None,
) -> AnonymizeOutput:
    """Anonymize one clean table as its metadata declares; pass it through when nothing is.
    `key` is the table's secret key (pseudonyms and keyed randomness; see `secret_key_env`);
    `memos` keep pseudonyms between the batches of a table anonymized batch by batch."""
    if not needs_anonymization(table):
        return AnonymizeOutput(tables={table.name: _published(clean)})
    spec = build_spec(table, loaded.folder)
    result = engine.anonymize_table(clean, spec, secret=key, memos=memos)
    generalized = {q for q, level in result.transformation.items() if level > 0}
    generalized |= {
        c.name for c in table.columns for op in c.anonymization if op.method == "pseudonymize"
    }
    tables = {
        name: _restore_types(_published(df), table, generalized)
        for name, df in result.tables.items()
    }
    fixed: dict[str, int] = {}
    for df in tables.values():
        fixed = _fixed_levels(df, table, loaded) or fixed
        _suppress_to_marker(df, table)
    notes = [f"generalized {name!r} to level {level}" for name, level in fixed.items()]
    metrics = {k: float(v) for k, v in result.metrics.items()}
    metrics["suppressed_records"] = float(result.suppressed)
    for q, level in {**result.transformation, **fixed}.items():
        metrics[f"level_{q}"] = float(level)
    summary = "\n".join([result.summary, *notes]) if notes else result.summary
    suppressed = quarantine_rows(
        clean.reset_index(drop=True).iloc[result.suppressed_rows],
        table=table.name,
        rule="anonymization",
        reason="suppressed",
        column=None,
        version=version,
    )
    return AnonymizeOutput(
        tables=tables,
        metrics=metrics,
        summary=summary,
        suppressed=int(result.suppressed),
        quarantine=suppressed,
    )


def _published(df: pd.DataFrame) -> pd.DataFrame:
    """The columns a consumer may see: everything but our `_dm_` bookkeeping."""
    return df.drop(columns=[c for c in df.columns if str(c).startswith("_dm_")])


def _as_text(s: pd.Series) -> pa.ChunkedArray:
    """A key column as Arrow text (both sides of a reference are compared the same way)."""
    if not isinstance(s.dtype, pd.ArrowDtype):
        s = s.astype("string[pyarrow]")
    arr = pa.chunked_array(pa.array(s, from_pandas=True))
    return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())


def _refers_to_known(
    values: pd.Series,
    parent: pd.Series,
    known_keys: dict[tuple[str, str], KeySet] | None,
    reference: tuple[str, str],
) -> np.ndarray:
    """Whether each value is null or one of the parent's keys. One call (the whole table): an
    Arrow hash set of the keys; batch by batch: one `KeySet` of `reference` for every batch."""
    text = _as_text(values).combine_chunks()
    if known_keys is None:
        keys = pc.unique(_as_text(parent).drop_null().combine_chunks())
        found = np.asarray(pc.is_in(text, value_set=keys).to_numpy(zero_copy_only=False))
    else:
        if reference not in known_keys:
            known_keys[reference] = KeySet(_as_text(parent))
        found = known_keys[reference].contains(text)
    return found.astype(bool) | np.asarray(pc.is_null(text).to_numpy(zero_copy_only=False))


def parent_key_sets(
    table: Table, parents: Mapping[str, pd.DataFrame]
) -> dict[tuple[str, str], KeySet]:
    """The key set of every parent column `table`'s foreign keys reference (`drop_orphans`'s
    `known_keys`, built before the first batch)."""
    known: dict[tuple[str, str], KeySet] = {}
    for col in table.columns:
        fk = col.foreignKey
        if fk is None or fk.table not in parents or (fk.table, fk.column) in known:
            continue
        frame = parents[fk.table]
        if fk.column in frame.columns:
            known[(fk.table, fk.column)] = KeySet(_as_text(frame[fk.column]))
    return known


def drop_orphans(
    tables: dict[str, pd.DataFrame],
    table: Table,
    parents: dict[str, pd.DataFrame],
    version: str,
    known_keys: dict[tuple[str, str], KeySet] | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Remove records whose foreign key points at a parent record that anonymization suppressed.

    Keys are compared as published (pseudonymized on both sides, or on neither: the loader
    requires that). The removed records go to the quarantine (rule `anonymization`).
    `known_keys` keeps the parents' key sets between calls (a table anonymized in batches).
    """
    if table.name not in tables or not parents:
        return tables, concat_quarantine([])
    df = tables[table.name]
    keep = np.ones(len(df), dtype=bool)
    parts = []
    for col in table.columns:
        fk = col.foreignKey
        if fk is None or fk.table not in parents or col.name not in df.columns:
            continue
        parent = parents[fk.table][fk.column]
        ok = _refers_to_known(df[col.name], parent, known_keys, (fk.table, fk.column))
        gone = keep & ~ok
        if gone.any():
            parts.append(
                quarantine_rows(
                    df[gone],
                    table=table.name,
                    rule="anonymization",
                    reason="parent_suppressed",
                    column=col.name,
                    version=version,
                )
            )
        keep &= ok
    out = dict(tables)
    out[table.name] = df if keep.all() else df[keep].reset_index(drop=True)
    return out, concat_quarantine(parts)


@dataclass(frozen=True)
class OutboxPrivacy:
    """The declared privacy models checked on a prepared table: the verdict, a one-line
    message (counts and model values only), and what each model reached."""

    passed: bool
    message: str
    metrics: dict[str, float] = field(default_factory=dict)
    """the check's metadata: each model's reached value, under the engine's name for it"""
    reached: PrivacyReached = PrivacyReached()


def check_outbox_privacy(
    outbox, loaded: LoadedModule, table: Table, version: str | None, reference=None
) -> OutboxPrivacy:
    """Check the outbox data against every declared privacy model, independently of the search;
    t-closeness compares with `reference` (the clean input) as the search did."""
    privacy = table.privacy
    if privacy is None or version is None:
        return OutboxPrivacy(True, "no privacy model declared")
    names = table.published_names
    if len(names) == 2:  # anatomization: the QIT/ST pair guarantees l-diversity by construction
        st = outbox.read_table(loaded.name, version, names[1])
        if not len(st):
            return OutboxPrivacy(True, "no records: every privacy model holds trivially")
        attr = next(name for name, _ in _column_ops(table, Anatomization))
        distinct = int(st.groupby("group_id")[attr].nunique().min()) if len(st) else 0
        l_value = next((pm.l for pm in privacy.models if pm.type == "l-diversity"), 2) or 2
        return OutboxPrivacy(
            distinct >= l_value,
            f"every anatomized group has at least {distinct} distinct sensitive values"
            f" (need {l_value})",
            {"min_distinct": distinct},
            PrivacyReached(
                (ModelReached("l-diversity", "l", float(l_value), float(distinct), attr),)
            ),
        )
    df = outbox.read_table(loaded.name, version, table.name)
    if not len(df):
        return OutboxPrivacy(True, "no records: every privacy model holds trivially")
    spec = build_spec(table, loaded.folder)
    results = engine.verify_table(df, spec, reference=reference)
    reached = PrivacyReached(
        tuple(
            ModelReached(
                m.kind,
                PARAMETER[m.kind],
                float(getattr(m, PARAMETER[m.kind])),
                float(r.achieved),
                None if m.kind == "k-anonymity" else m.attribute,
            )
            for m, r in zip(spec.privacy_models, results, strict=True)
        )
    )
    achieved = {r.model: float(r.achieved) for r in results}
    failures = [r.message() for r in results if not r.satisfied]
    if failures:
        return OutboxPrivacy(False, "; ".join(failures), achieved, reached)
    return OutboxPrivacy(
        True,
        "all declared privacy models hold: "
        + ", ".join(f"{k} (reached {v:g})" for k, v in achieved.items()),
        achieved,
        reached,
    )


PARAMETER = {"k-anonymity": "k", "l-diversity": "l", "t-closeness": "t"}


def verify_outbox_privacy(
    outbox, loaded: LoadedModule, table: Table, version: str | None, reference=None
) -> tuple[bool, str, dict[str, float]]:
    """`check_outbox_privacy` as (passed, message, metrics) for the blocking asset check."""
    checked = check_outbox_privacy(outbox, loaded, table, version, reference)
    return checked.passed, checked.message, checked.metrics
