"""From a table's metadata to the anonymization engine's spec (`spec.AnonymizationSpec`).

The secret key is not part of the spec: `secret_key_env` names the variable the step reads it
from (through the deployment's secrets).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from etl_assets.anonymize import hierarchy as hier
from etl_assets.anonymize import spec as engine
from etl_assets.metadata import (
    Anatomization,
    Column,
    Generalization,
    Permutation,
    Perturbation,
    Privacy,
    Pseudonymization,
    Suppression,
    Table,
)


def needs_anonymization(table: Table) -> bool:
    return table.privacy is not None or any(c.anonymization for c in table.columns)


DEFAULT_KEY_ENV = "DM_PSEUDONYM_KEY"


def secret_key_env(table: Table) -> str | None:
    """The variable holding the table's secret key: the `keyEnv` of its pseudonymized columns,
    else the default. Pseudonyms use it, and so does every randomized operation (noise,
    permutation, anatomization groups), keyed per record. None when nothing needs a key."""
    ops = [op for c in table.columns for op in c.anonymization]
    env = next((op.keyEnv for op in ops if op.method == "pseudonymize"), None)
    randomized = any(op.method in ("perturb", "permute", "anatomize") for op in ops)
    return env or (DEFAULT_KEY_ENV if randomized else None)


def generalization(op: Generalization, folder: Path) -> engine.Generalization:
    """The engine's generalization for a metadata `generalize` operation."""
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


def _role(col: Column, privacy: Privacy | None) -> str:
    if privacy is not None and col.name in privacy.quasiIdentifiers:
        return "quasi_identifier"
    if privacy is not None and col.name in privacy.sensitive:
        return "sensitive"
    return "insensitive"


def _perturbation(op: Perturbation, col: Column) -> engine.Perturbation:
    rng = col.range
    return engine.Perturbation(
        kind=None if op.noise == "round" else op.noise,
        scale=op.scale,
        epsilon=op.epsilon,
        sensitivity=op.sensitivity or 1.0,
        round_to=op.base if op.noise == "round" else (1.0 if col.dataType == "integer" else None),
        clip_min=float(rng.min) if rng and rng.min is not None else None,
        clip_max=float(rng.max) if rng and rng.max is not None else None,
    )


def _anatomization(col: Column, privacy: Privacy | None) -> engine.Anatomization:
    models = privacy.models if privacy else []
    l_value = next((pm.l for pm in models if pm.type == "l-diversity"), 2)
    return engine.Anatomization(attribute=col.name, l=int(l_value or 2))


def column_spec(col: Column, privacy: Privacy | None, folder: Path) -> engine.ColumnSpec:
    """The engine's spec of one column: its role and operations."""
    role = _role(col, privacy)
    spec = engine.ColumnSpec(name=col.name, role=role)
    for op in col.anonymization:
        if isinstance(op, Generalization):
            # QIs: the search picks the level; a sensitive column's hierarchy serves
            # hierarchical t-closeness; other columns get a fixed level (see table.py)
            if role in ("quasi_identifier", "sensitive"):
                spec.generalization = generalization(op, folder)
        elif isinstance(op, Suppression):
            spec.suppress = True
        elif isinstance(op, Permutation):
            spec.permute = "class" if op.within == "class" else "column"
        elif isinstance(op, Perturbation):
            spec.perturbation = _perturbation(op, col)
        elif isinstance(op, Pseudonymization):
            spec.pseudonymize = True
    if role == "quasi_identifier" and spec.generalization is None:
        # a QI without a generalization can only be kept or suppressed entirely
        spec.generalization = engine.Generalization(kind="prefix", keep=[])
    return spec


def _privacy_models(privacy: Privacy) -> list[engine.PrivacyModel]:
    default_attr = privacy.sensitive[0] if privacy.sensitive else None
    return [
        engine.PrivacyModel(
            kind=pm.type,
            k=pm.k,
            l=pm.l,
            variant=pm.variant or "distinct",
            t=pm.t,
            distance=pm.distance or "equal",
            attribute=None if pm.type == "k-anonymity" else (pm.attribute or default_attr),
        )
        for pm in privacy.models
    ]


def build_spec(table: Table, folder: Path) -> engine.AnonymizationSpec:
    """The engine's spec for `table`, validated (a `SpecError` names what is inconsistent)."""
    privacy = table.privacy
    columns = [column_spec(col, privacy, folder) for col in table.columns]
    anatomized = next(
        (c for c in table.columns if any(isinstance(op, Anatomization) for op in c.anonymization)),
        None,
    )
    spec = engine.AnonymizationSpec(
        table=table.name,
        columns=columns,
        privacy_models=_privacy_models(privacy) if privacy and anatomized is None else [],
        suppression_limit=privacy.suppressionLimit if privacy else 0.0,
        metric=privacy.metric if privacy else "loss",
        loss_gs_factor=privacy.lossGsFactor if privacy else 0.5,
        anatomization=_anatomization(anatomized, privacy) if anatomized is not None else None,
    )
    return spec.validate()


def check_spec(table: Table, folder: Path) -> None:
    """Build the spec and every hierarchy that needs no data (files, inline rows): a module
    whose anonymization cannot run fails when it loads, not when a run reaches it."""
    spec = build_spec(table, folder)
    for col in spec.columns:
        g = col.generalization
        if g is not None and g.kind == "hierarchy":
            hier.build(pd.Series([], dtype=object, name=col.name), g.as_config())
