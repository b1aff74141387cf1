"""What a version's Croissant metadata says about how its data came to be: Croissant RAI
properties (the collection, the cleaning rules, the anonymization of every column and the
privacy models with the values reached) and W3C PROV-O provenance (the runs, the sources by
name, the metadata's canonical hash).

Everything here comes from the module metadata and from what the stages recorded (counts,
generalization levels, the values the privacy models reached) — never a record's value, a value
before anonymization, a key or a salt, a source's path or URL, or a credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from etl_assets.metadata import (
    Anatomization,
    Generalization,
    Permutation,
    Perturbation,
    Pseudonymization,
    Suppression,
    Table,
)
from etl_assets.metadata.loader import LoadedModule
from etl_assets.results import TableOutcome

DM_VOCAB = "https://w3id.org/datamodule-etl/vocab#"
RUN_IRI = "urn:dagster:run:"


def _generalized(op: Generalization, level: int | None) -> str:
    """What a generalization at `level` publishes (level 0 is the original value)."""
    steps: list[str] | None = None
    if op.width:
        steps = [f"intervals '[low, high)' of width {w:g}" for w in op.width]
    elif op.truncate:
        steps = [f"dates truncated to the {t}" for t in op.truncate]
    elif op.keepPrefix:
        steps = [f"the first {n} characters kept, the rest masked with '*'" for n in op.keepPrefix]
    elif op.bins:
        steps = ["intervals '[low, high)' between the bin edges " + ", ".join(map(str, op.bins))]
    if level is None:
        return "generalized (the level is chosen per version)"
    if level == 0:
        return "not generalized in this version (level 0: original values)"
    if steps is None:
        return f"generalized along its hierarchy to level {level} ('*' at the top)"
    if level <= len(steps):
        return f"generalized to level {level}: {steps[level - 1]}"
    return f"generalized to level {level}: fully, every value is '*'"


def _operation(op: Any, table: Table, column: str, level: int | None) -> tuple[dict, str]:
    """One anonymization operation as structured data and as a sentence."""
    if isinstance(op, Pseudonymization):
        return {"dm:method": "pseudonymize"}, (
            "pseudonymized: a keyed hash (HMAC-SHA256) of the original value, equal for equal"
            " values in every table and version; the key is not published"
        )
    if isinstance(op, Suppression):
        shown = repr(op.marker) if op.marker is not None else "null"
        return {
            "dm:method": "suppress",
            "dm:marker": op.marker,
        }, f"suppressed: every value is {shown}"
    if isinstance(op, Generalization):
        return {"dm:method": "generalize", "dm:level": level}, _generalized(op, level)
    if isinstance(op, Perturbation):
        params = {k: getattr(op, k) for k in ("scale", "epsilon", "sensitivity", "base")}
        params = {k: v for k, v in params.items() if v is not None}
        text = ", ".join(f"{k} {v:g}" for k, v in params.items())
        what = "rounded" if op.noise == "round" else f"{op.noise} noise added"
        return (
            {
                "dm:method": "perturb",
                "dm:noise": op.noise,
                **{f"dm:{k}": v for k, v in params.items()},
            },
            f"perturbed: {what} ({text}), keyed per record so it repeats in every version",
        )
    if isinstance(op, Permutation):
        where = (
            "within equivalence classes of the quasi-identifiers"
            if op.within == "class"
            else "across the table"
        )
        return {"dm:method": "permute", "dm:within": op.within}, f"permuted {where}"
    if isinstance(op, Anatomization):
        st = table.published_names[-1]
        return {"dm:method": "anatomize"}, (
            f"anatomized: published in {st} apart from the quasi-identifiers, linked by group_id"
        )
    return {"dm:method": op.method}, op.method


def column_anonymization(
    table: Table, column: str, outcome: TableOutcome | None
) -> dict[str, Any] | None:
    """The anonymization of one published column (None when it is published as collected)."""
    if column not in {c.name for c in table.columns}:
        return None
    privacy = table.privacy
    roles = []
    if privacy and column in privacy.quasiIdentifiers:
        roles.append("quasi-identifier")
    if privacy and column in privacy.sensitive:
        roles.append("sensitive")
    level = outcome.levels.get(column) if outcome else None
    ops = [_operation(op, table, column, level) for op in table.column(column).anonymization]
    if not ops and not roles:
        return None
    applied = "; ".join(text for _, text in ops) or "published as collected"
    if roles:
        applied = f"{' and '.join(roles)}, {applied}"
    return {
        "@type": "dm:ColumnAnonymization",
        "dm:role": roles,
        "dm:operations": [structured for structured, _ in ops],
        "dm:applied": applied,
    }


def _privacy_text(table: Table, outcome: TableOutcome | None) -> str:
    """One table's privacy models with the values reached, and what was removed for them."""
    privacy = table.privacy
    assert privacy is not None
    if outcome and outcome.privacy.models:
        models = "; ".join(m.text for m in outcome.privacy.models)
    else:
        models = "; ".join(f"{m.type} required" for m in privacy.models)
    qis = ", ".join(
        f"{q} (level {outcome.levels[q]})" if outcome and q in outcome.levels else q
        for q in privacy.quasiIdentifiers
    )
    text = f"{table.name}: {models}; quasi-identifiers {qis}"
    if outcome:
        c = outcome.counts
        text += (
            f"; {c.suppressed} of {c.rows_in} records suppressed"
            f" (limit {privacy.suppressionLimit:.0%})"
        )
        if c.parent_suppressed:
            text += f", {c.parent_suppressed} removed with their suppressed parent"
    return text


def _cleaned(table: Table, outcome: TableOutcome | None) -> list[str]:
    """How many records the cleaning rules of a table rejected or changed, per rule and column."""
    c = outcome.cleaned if outcome else None
    if c is None:
        return []
    details = ", ".join(f"{k} {v}" for k, v in c.details.items() if v)
    return [
        f"{table.name}: {c.rows_extracted} records extracted, {c.rows_out} kept, {c.rejected}"
        f" rejected, {c.duplicates} duplicates merged" + (f" ({details})" if details else "")
    ]


def _preprocessing(table: Table) -> list[str]:
    """The cleaning rules of a table, as the metadata declares them."""
    lines = []
    if table.primaryKey:
        lines.append(
            f"{table.name}: primary key ({', '.join(table.primaryKey)}) made unique"
            f" ({table.onKeyConflict})"
        )
    for c in table.columns:
        where = f"{table.name}.{c.name}"
        if c.range and c.range.allowed is not None:
            lines.append(f"{where}: {len(c.range.allowed)} allowed values ({c.range.onViolation})")
        elif c.range:
            low, high = c.range.min, c.range.max
            bounds = (
                f"at least {low}"
                if high is None
                else f"at most {high}"
                if low is None
                else f"[{low}, {high}]"
            )
            lines.append(f"{where}: {bounds} ({c.range.onViolation})")
        if c.foreignKey:
            fk = c.foreignKey
            lines.append(f"{where}: records whose {fk.table}.{fk.column} is unknown removed")
    return lines


def rai_properties(loaded: LoadedModule, outcomes: Mapping[str, TableOutcome]) -> dict[str, Any]:
    """Croissant RAI properties of a version (the `rai:` vocabulary)."""
    model = loaded.model
    sources = [
        f"{e.table} from {e.source} ({e.extract.type}, priority {e.priority})"
        for e in model.collection
    ]
    manipulation, sensitive = [], []
    for table in model.tables:
        outcome = outcomes.get(table.name)
        if table.privacy:
            manipulation.append(_privacy_text(table, outcome))
            sensitive.append(
                f"{table.name}: quasi-identifiers {', '.join(table.privacy.quasiIdentifiers)}"
                + (
                    f"; sensitive {', '.join(table.privacy.sensitive)}"
                    if table.privacy.sensitive
                    else ""
                )
            )
        for col in table.columns:
            if applied := column_anonymization(table, col.name, outcome):
                manipulation.append(f"{table.name}.{col.name}: {applied['dm:applied']}")
    empty = [
        f"{t.name}.{c.name}: {c.empty.strategy}"
        + (" (filled with the declared value)" if c.empty.strategy == "fill" else "")
        for t in model.tables
        for c in t.columns
        if c.empty
    ]
    return {
        "rai:dataCollection": "Collected by Datamodule ETL as the module's collection protocol"
        " declares: " + "; ".join(sources),
        "rai:dataCollectionRawData": "Raw records, values before anonymization, rejected"
        " records (the quarantine) and key maps are kept in a restricted zone for data managers;"
        " they are not part of this dataset.",
        "rai:dataCollectionMissingData": "Empty values are kept as null unless a rule says"
        + (" otherwise: " + "; ".join(empty) if empty else " otherwise (none is declared)"),
        "rai:dataPreprocessingProtocol": [
            "values typed as declared; records violating a rule are removed or corrected and kept"
            " with their reason in the restricted quarantine",
            *[line for t in model.tables for line in _preprocessing(t)],
            *[line for t in model.tables for line in _cleaned(t, outcomes.get(t.name))],
        ],
        "rai:dataManipulationProtocol": manipulation or ["no anonymization is declared"],
        "rai:personalSensitiveInformation": sensitive or ["none declared"],
        "rai:dataLimitations": [
            "generalized columns are text (intervals '[low, high)', truncated dates such as"
            " 'YYYY-Qn', masked prefixes, '*' when fully generalized), whatever their declared type",
            "records that could not meet the privacy models were suppressed (removed), which can"
            " shift distributions; noise and permutations change individual values",
        ],
        "rai:dataReleaseMaintenancePlan": _maintenance(model),
    }


def _maintenance(model) -> str:
    """How versions are released and how long each stays readable (the module's retention)."""
    keep = model.keepPublished
    if keep is None:
        kept = "Every published version stays readable"
    else:
        limits = [f"the {keep.versions} highest"] if keep.versions else []
        limits += [f"those published in the last {keep.days} days"] if keep.days else []
        kept = f"Published versions stay readable while they are {' or '.join(limits)}"
    return (
        "Each run publishes a new version (semver). "
        + kept
        + " (the current one always), each in its own folder with this file and its own"
        " PostgreSQL relations (<table>__v<major>_<minor>_<patch>); <schema>.<table> serves"
        " the current version and published/<module>/current.json names its folder. Prepared"
        f" versions that are never uploaded expire after {model.retentionDays} days."
    )


def provenance(
    loaded: LoadedModule,
    version: str,
    outcomes: Mapping[str, TableOutcome],
    run_id: str | None,
) -> dict[str, Any]:
    """W3C PROV-O: the run that published the version (informed by the runs that prepared
    it), the sources it used by name, and the module metadata by its canonical hash."""
    model = loaded.model
    tables: dict[str, list[str]] = {}
    kinds: dict[str, set[str]] = {}
    for e in model.collection:
        tables.setdefault(e.source, []).append(e.table)
        kinds.setdefault(e.source, set()).add(e.extract.type)
    used = [
        {
            "@type": "prov:Entity",
            "@id": f"urn:datamodule-etl:{model.name}:source:{source}",
            "prov:label": f"source {source} ({', '.join(sorted(kinds[source]))})"
            f" of {', '.join(sorted(set(names)))}",
        }
        for source, names in tables.items()
    ]
    metadata = {
        "@type": "prov:Entity",
        "@id": f"urn:datamodule-etl:{model.name}:metadata:sha256:{loaded.hash}",
        "prov:label": f"module metadata of {model.name} {version}, canonical hash"
        " (JSON-LD URDNA2015, SHA-256)",
        "dm:metadataHash": loaded.hash,
    }
    prepared = sorted({o.run_id for o in outcomes.values() if o.run_id} - {run_id})
    activity: dict[str, Any] = {
        "@type": "prov:Activity",
        "prov:label": f"Datamodule ETL run publishing {model.name} {version}",
        "prov:used": [*used, metadata],
    }
    if run_id:
        activity["@id"] = RUN_IRI + run_id
        activity["dm:runId"] = run_id
    if prepared:
        activity["prov:wasInformedBy"] = [
            {"@type": "prov:Activity", "@id": RUN_IRI + r, "dm:runId": r} for r in prepared
        ]
    return {
        "prov:wasGeneratedBy": activity,
        "prov:wasDerivedFrom": [{"@id": u["@id"]} for u in used] + [{"@id": metadata["@id"]}],
    }


def record_set_privacy(table: Table, outcome: TableOutcome | None) -> dict[str, Any]:
    """The privacy models of a published table with the values reached, and the records
    anonymization removed, as structured properties of its RecordSet."""
    if table.privacy is None or outcome is None:
        return {}
    return {
        "dm:privacyModels": [
            {
                "@type": "dm:PrivacyModel",
                "dm:model": m.model,
                "dm:parameter": m.parameter,
                "dm:required": m.required,
                "dm:reached": m.reached,
                **({"dm:attribute": m.attribute} if m.attribute else {}),
            }
            for m in outcome.privacy.models
        ],
        "dm:suppressedRecords": outcome.counts.suppressed,
        "dm:removedWithParent": outcome.counts.parent_suppressed,
    }
