"""The anonymize stage: map a table's metadata onto the anonymization engine and run it.

Randomness is seeded from (module, version, metadata hash): re-running a version reproduces
its output exactly. The pseudonymization key comes from the environment (`keyEnv`, default
`DM_PSEUDONYM_KEY`); on a local deployment without it, a random key is created once under
DAGSTER_HOME/secrets so pseudonyms stay stable between runs.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from etl_assets import anonymize as engine
from etl_assets.loader import LoadedModule
from etl_assets.model import (
    Anatomization,
    Generalization,
    Permutation,
    Perturbation,
    Pseudonymization,
    Suppression,
    Table,
)
from etl_assets.settings import dagster_home, deployment
from etl_assets.typing_rules import arrow_dtype


@dataclass
class AnonymizeOutput:
    tables: dict[str, pd.DataFrame]
    metrics: dict[str, float] = field(default_factory=dict)
    summary: str = ""


def published_tables(table: Table) -> list[str]:
    """The tables a source table is published as (two for anatomization)."""
    if any(isinstance(op, Anatomization) for c in table.columns for op in c.anonymization):
        return [f"{table.name}_qit", f"{table.name}_st"]
    return [table.name]


def version_seed(loaded: LoadedModule, version: str) -> int:
    digest = hashlib.sha256(f"{loaded.name}\0{version}\0{loaded.hash}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def pseudonym_key(env_name: str) -> bytes:
    """The HMAC key: from the environment, or (local only) a generated key kept on disk."""
    value = os.environ.get(env_name)
    if value:
        return value.encode("utf-8")
    if deployment() != "local":
        raise RuntimeError(
            f"pseudonymize needs the secret key in the environment variable {env_name}"
        )
    path = dagster_home() / "secrets" / f"{env_name.lower()}.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode("utf-8")


def _generalization(op: Generalization, folder: Path) -> engine.Generalization:
    if op.hierarchy is not None:
        if op.hierarchy.file:
            return engine.Generalization(kind="hierarchy", path=str(folder / op.hierarchy.file))
        return engine.Generalization(kind="hierarchy", levels=op.hierarchy.rows)
    if op.bins is not None:
        return engine.Generalization(kind="intervals", bins=[list(op.bins)])
    if op.width is not None:
        return engine.Generalization(kind="intervals", widths=list(op.width))
    if op.truncate is not None:
        return engine.Generalization(kind="date", date_levels=list(op.truncate))
    return engine.Generalization(kind="prefix", keep=list(op.keepPrefix or []))


def build_spec(table: Table, loaded: LoadedModule) -> tuple[engine.AnonymizationSpec, bytes | None]:
    """The engine's spec for `table`, and the pseudonymization key if one is needed."""
    privacy = table.privacy
    qis = set(privacy.quasiIdentifiers) if privacy else set()
    sensitive = set(privacy.sensitive) if privacy else set()
    columns: list[engine.ColumnSpec] = []
    anatomization = None
    key: bytes | None = None
    for col in table.columns:
        role = (
            "quasi_identifier"
            if col.name in qis
            else "sensitive"
            if col.name in sensitive
            else "insensitive"
        )
        spec = engine.ColumnSpec(name=col.name, role=role)
        for op in col.anonymization:
            if isinstance(op, Generalization):
                # QIs: the search picks the level; a sensitive column's hierarchy serves
                # hierarchical t-closeness; other columns get a fixed level (_fixed_levels)
                if role in ("quasi_identifier", "sensitive"):
                    spec.generalization = _generalization(op, loaded.folder)
            elif isinstance(op, Suppression):
                spec.suppress = True
            elif isinstance(op, Permutation):
                spec.permute = "class" if op.within == "class" else "column"
            elif isinstance(op, Perturbation):
                rng = col.range
                spec.perturbation = engine.Perturbation(
                    kind=None if op.noise == "round" else op.noise,
                    scale=op.scale,
                    epsilon=op.epsilon,
                    sensitivity=op.sensitivity or 1.0,
                    round_to=op.base
                    if op.noise == "round"
                    else (1.0 if col.dataType == "integer" else None),
                    clip_min=float(rng.min) if rng and rng.min is not None else None,
                    clip_max=float(rng.max) if rng and rng.max is not None else None,
                )
            elif isinstance(op, Pseudonymization):
                spec.pseudonymize = True
                key = pseudonym_key(op.keyEnv)
            elif isinstance(op, Anatomization):
                l_value = next(
                    (
                        pm.l
                        for pm in (privacy.models if privacy else [])
                        if pm.type == "l-diversity"
                    ),
                    2,
                )
                anatomization = engine.Anatomization(attribute=col.name, l=int(l_value or 2))
        if role == "quasi_identifier" and spec.generalization is None:
            # a QI without a hierarchy can only be kept or suppressed entirely
            spec.generalization = engine.Generalization(kind="hierarchy", levels=None)
        columns.append(spec)
    models = []
    if privacy is not None and anatomization is None:
        default_attr = privacy.sensitive[0] if privacy.sensitive else None
        for pm in privacy.models:
            models.append(
                engine.PrivacyModel(
                    kind=pm.type,
                    k=pm.k,
                    l=pm.l,
                    variant=pm.variant or "distinct",
                    t=pm.t,
                    distance=pm.distance or "equal",
                    attribute=None if pm.type == "k-anonymity" else (pm.attribute or default_attr),
                )
            )
    spec = engine.AnonymizationSpec(
        table=table.name,
        columns=columns,
        privacy_models=models,
        suppression_limit=privacy.suppressionLimit if privacy else 0.0,
        metric=privacy.metric if privacy else "loss",
        loss_gs_factor=privacy.lossGsFactor if privacy else 0.5,
        anatomization=anatomization,
    )
    return spec, key


def _restore_types(out: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Columns the engine left untouched keep their declared type; generalized ones are text."""
    for col in table.columns:
        if col.name in out.columns and out[col.name].dtype == object:
            try:
                out[col.name] = out[col.name].astype(arrow_dtype(col.dataType))
            except (TypeError, ValueError, ArithmeticError):
                out[col.name] = out[col.name].astype("string[pyarrow]")
    return out


def _column_ops(table: Table, kind: type) -> list[tuple[str, object]]:
    return [(c.name, op) for c in table.columns for op in c.anonymization if isinstance(op, kind)]


def _fixed_levels(out: pd.DataFrame, table: Table, loaded: LoadedModule) -> list[str]:
    """Generalize columns that are not quasi-identifiers to their declared level."""
    from etl_assets.anonymize import hierarchy as hier

    qis = set(table.privacy.quasiIdentifiers) if table.privacy else set()
    done = []
    for name, op in _column_ops(table, Generalization):
        if name in qis or name not in out.columns or op.level is None:
            continue
        h = hier.build(out[name], _generalization(op, loaded.folder).as_config())
        level = min(op.level, h.levels - 1)
        out[name] = pd.Series(h.generalize(h.encode(out[name]), level), index=out.index).astype(
            "string[pyarrow]"
        )
        done.append(f"generalized {name!r} to level {level}")
    return done


def _suppress_to_marker(out: pd.DataFrame, table: Table) -> None:
    """Cell suppression writes the declared marker, or null when none is declared."""
    for name, op in _column_ops(table, Suppression):
        if name in out.columns:
            out[name] = pd.Series(op.marker, index=out.index, dtype="string[pyarrow]")


def anonymize_for_module(
    clean: pd.DataFrame, table: Table, loaded: LoadedModule, version: str
) -> AnonymizeOutput:
    """Anonymize one clean table as its metadata declares; pass it through when nothing is."""
    needs = table.privacy is not None or any(c.anonymization for c in table.columns)
    if not needs:
        return AnonymizeOutput(tables={table.name: clean}, summary="")
    spec, key = build_spec(table, loaded)
    result = engine.anonymize_table(clean, spec, seed=version_seed(loaded, version), secret=key)
    tables = {name: _restore_types(df, table) for name, df in result.tables.items()}
    notes = []
    for df in tables.values():
        notes = _fixed_levels(df, table, loaded) or notes
        _suppress_to_marker(df, table)
    metrics = {k: float(v) for k, v in result.metrics.items()}
    metrics["suppressed_records"] = float(result.suppressed)
    for q, level in result.transformation.items():
        metrics[f"level_{q}"] = float(level)
    summary = "\n".join([result.summary, *notes]) if notes else result.summary
    return AnonymizeOutput(tables=tables, metrics=metrics, summary=summary)


def drop_orphans(
    tables: dict[str, pd.DataFrame],
    table: Table,
    parents: dict[str, pd.DataFrame],
    version: str,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Remove records whose foreign key points at a parent record that anonymization suppressed.

    Keys are compared as published (pseudonymized on both sides, or on neither: the loader
    requires that). The removed records go to the quarantine (rule `anonymization`).
    """
    from etl_assets.quarantine import concat_quarantine, quarantine_rows

    if table.name not in tables or not parents:
        return tables, concat_quarantine([])
    df = tables[table.name]
    keep = pd.Series(True, index=df.index)
    parts = []
    for col in table.columns:
        fk = col.foreignKey
        if fk is None or fk.table not in parents or col.name not in df.columns:
            continue
        known = parents[fk.table][fk.column]
        ok = df[col.name].isna() | df[col.name].isin(known.dropna())
        gone = keep & ~ok.to_numpy(dtype=bool)
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
        keep &= ok.to_numpy(dtype=bool)
    out = dict(tables)
    out[table.name] = df[keep.to_numpy()].reset_index(drop=True)
    return out, concat_quarantine(parts)


def verify_outbox_privacy(
    outbox, loaded: LoadedModule, table: Table, version: str | None, reference=None
):
    """Check the outbox data against every declared privacy model, independently of the search;
    t-closeness compares with `reference` (the clean input) as the search did."""
    privacy = table.privacy
    if privacy is None or version is None:
        return True, "no privacy model declared", {}
    names = published_tables(table)
    if len(names) == 2:  # anatomization: the QIT/ST pair guarantees l-diversity by construction
        st = outbox.read_table(loaded.name, version, names[1])
        attr = next(name for name, _ in _column_ops(table, Anatomization))
        distinct = int(st.groupby("group_id")[attr].nunique().min()) if len(st) else 0
        l_value = next((pm.l for pm in privacy.models if pm.type == "l-diversity"), 2) or 2
        return (
            distinct >= l_value,
            f"every anatomized group has at least {distinct} distinct sensitive values (need {l_value})",
            {"min_distinct": distinct},
        )
    df = outbox.read_table(loaded.name, version, table.name)
    spec, _ = build_spec(table, loaded)
    results = engine.verify_table(df, spec, reference=reference)
    achieved = {r.model: float(r.achieved) for r in results}
    failures = [r.message() for r in results if not r.satisfied]
    if failures:
        return False, "; ".join(failures), achieved
    return (
        True,
        "all declared privacy models hold: "
        + ", ".join(f"{k} (reached {v:g})" for k, v in achieved.items()),
        achieved,
    )
