"""The single entry point of the anonymization stage: ``anonymize_table``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from resources.memory import trim_memory

from . import hierarchy as hier
from . import operations as ops
from .evaluation import Problem, encode_codes
from .keyed import KeyedRandom
from .privacy import (
    CheckResult,
    check_k_anonymity,
    check_l_diversity,
    check_t_closeness,
    table_classes,
)
from .search import SearchResult, optimal_search
from .spec import AnonymizationSpec, PrivacyModel, SpecError


class PrivacyModelUnsatisfiable(Exception):
    """No transformation satisfies the privacy models within the record-suppression limit."""


@dataclass
class AnonymizationResult:
    """Output tables, the transformation found, its metrics and a readable summary."""

    tables: dict[str, pd.DataFrame]
    transformation: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    suppressed: int = 0
    suppressed_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """positions (in the input) of the records that record suppression removed"""
    summary: str = ""
    search: SearchResult | None = None


def _check_columns(df: pd.DataFrame, spec: AnonymizationSpec) -> None:
    missing = [c.name for c in spec.columns if c.name not in df.columns]
    if missing:
        raise SpecError(
            f"anonymization spec of table {spec.table!r}: columns {missing} are not in the table; "
            f"expected among {list(df.columns)}"
        )


def _unsatisfiable_message(spec: AnonymizationSpec, res: SearchResult, n: int, limit: int) -> str:
    closest = res.closest
    lim_pct = 100.0 * spec.suppression_limit
    if closest is None:
        return f"table {spec.table!r}: no transformation satisfies the privacy models"
    parts = []
    for model, count in closest.violations.items():
        if count:
            what = (
                "in classes smaller than"
                if model.startswith("k-anonymity")
                else "in classes violating"
            )
            suffix = f" {model.split('k=')[1]}" if model.startswith("k-anonymity") else f" {model}"
            parts.append(
                f"{model}: best transformation leaves {count} records ({100.0 * count / n:.2f}%) "
                f"{what}{suffix}"
            )
    detail = "; ".join(parts) or f"{closest.suppressed} records would need suppression"
    return (
        f"table {spec.table!r}: {detail}; suppression limit is {lim_pct:g}% ({limit} records); "
        f"transformation {list(closest.node)}"
    )


def record_random(df: pd.DataFrame, spec: AnonymizationSpec, secret: bytes) -> KeyedRandom:
    """The table's keyed per-record randomness: a record's identity is all its declared values."""
    return KeyedRandom.for_records(df, [c.name for c in spec.columns], secret)


def _randomized(spec: AnonymizationSpec) -> bool:
    """Whether any operation draws keyed randomness (else the records' fingerprints, a hash of
    every value, are not computed at all)."""
    columns = any(c.perturbation is not None or c.permute is not None for c in spec.columns)
    return columns or spec.anatomization is not None


def anonymize_table(
    df: pd.DataFrame,
    spec: AnonymizationSpec,
    seed: int = 0,
    secret: bytes | None = None,
    memos: dict[str, ops.PseudonymMemo] | None = None,
) -> AnonymizationResult:
    """Apply the spec's operations and find the optimal generalization satisfying its models.

    Randomized operations are keyed per record with `secret` (the pseudonymization key): an
    unchanged record gets the same noise, permutation slot and group in every run. Without a
    secret (engine-level use) the key is derived from `seed`.
    Raises ``PrivacyModelUnsatisfiable`` when no transformation meets the models within the
    suppression limit, and ``SpecError`` for an inconsistent spec. `memos` (per column) keep
    pseudonyms between the batches of one table.
    """
    spec.validate()
    _check_columns(df, spec)
    out = df.reset_index(drop=True).copy()
    rng = record_random(out, spec, secret or f"seed:{seed}".encode()) if _randomized(spec) else None
    n = len(out)
    lines = [f"table {spec.table!r}: {n} records"]
    _column_operations(out, spec, rng, secret, lines, memos)
    if n == 0:
        return _empty_result(out, spec, lines)
    if spec.anatomization is not None:
        return _anatomize(out, spec, rng, lines)
    result = AnonymizationResult(tables={})
    qis = spec.quasi_identifiers
    suppressed_mask = np.zeros(n, dtype=bool)
    if spec.privacy_models or any(spec.column(q).generalization is not None for q in qis):
        suppressed_mask = _generalize(out, spec, result, lines)
        # the search's hierarchies, codes and class tables, freed, given back
        trim_memory(force=True)
    _permute(out, spec, rng, lines)
    # Record suppression.
    n_supp = int(suppressed_mask.sum())
    out = ops.suppress_records(
        out, suppressed_mask, how=spec.suppressed_records, columns=qis, marker=spec.marker
    )
    if n_supp:
        lines.append(
            f"suppressed {n_supp} records ({100.0 * n_supp / max(n, 1):.2f}%, "
            f"limit {100 * spec.suppression_limit:g}%), {'dropped' if spec.suppressed_records == 'drop' else 'masked'}"
        )
    for k in ("loss", "entropy", "discernibility", "avg_class_size", "min_class_size"):
        if k in result.metrics:
            lines.append(f"{k}: {result.metrics[k]:.6g}")
    result.tables[spec.table] = out
    result.suppressed = n_supp
    result.suppressed_rows = np.flatnonzero(suppressed_mask)
    result.summary = "\n".join(lines)
    return result


def _column_operations(
    out: pd.DataFrame,
    spec: AnonymizationSpec,
    rng: KeyedRandom | None,
    secret: bytes | None,
    lines: list[str],
    memos: dict[str, ops.PseudonymMemo] | None = None,
) -> None:
    """Pseudonyms, perturbation, cell suppression (column-local operations), in place."""
    for c in spec.columns:
        if c.pseudonymize:
            if secret is None:
                raise SpecError(
                    f"column {c.name!r}: pseudonymize needs a secret key; none was given"
                )
            memo = None if memos is None else memos.setdefault(c.name, ops.PseudonymMemo())
            out[c.name] = ops.pseudonymize(out[c.name], secret, memo=memo)
            lines.append(f"pseudonymized {c.name!r} (HMAC-SHA256)")
        if c.perturbation is not None:
            p = c.perturbation
            out[c.name] = ops.perturb(
                out[c.name],
                rng,
                p.kind,
                p.scale,
                p.epsilon,
                p.sensitivity,
                p.delta,
                p.round_to,
                p.clip_min,
                p.clip_max,
            )
            lines.append(
                f"perturbed {c.name!r} ({p.kind or 'no noise'}, round {p.round_to}, "
                f"clip [{p.clip_min}, {p.clip_max}])"
            )
        if c.suppress:
            out[c.name] = ops.suppress_cells(out[c.name], None, spec.marker)
            lines.append(f"suppressed every cell of {c.name!r}")


def _empty_result(
    out: pd.DataFrame, spec: AnonymizationSpec, lines: list[str]
) -> AnonymizationResult:
    """A table without records: nothing to generalize or group; the same columns come out
    (generalized quasi-identifiers as text), so every later stage sees the usual shape."""
    for q in spec.quasi_identifiers:
        out[q] = out[q].astype("string[pyarrow]")
    lines.append("no records: nothing to anonymize")
    if spec.anatomization is None:
        return AnonymizationResult(tables={spec.table: out}, summary="\n".join(lines))
    a = spec.anatomization
    qit = out[[c for c in out.columns if c != a.attribute]].copy()
    qit.insert(0, "group_id", pd.Series([], dtype="int64"))
    st = pd.DataFrame(
        {
            "group_id": pd.Series([], dtype="int64"),
            a.attribute: out[a.attribute],
            "count": pd.Series([], dtype="int64"),
        }
    )
    return AnonymizationResult(
        tables={f"{spec.table}_qit": qit, f"{spec.table}_st": st}, summary="\n".join(lines)
    )


def _anatomize(
    out: pd.DataFrame, spec: AnonymizationSpec, rng: KeyedRandom, lines: list[str]
) -> AnonymizationResult:
    """Publish exact QIs in a QIT and the sensitive values in an ST."""
    a, tname = spec.anatomization, spec.table
    if a.attribute not in out.columns:
        raise SpecError(f"anatomization attribute {a.attribute!r} is not a column of {tname!r}")
    others = [c for c in out.columns if c != a.attribute]
    qit, st = ops.anatomize(out, others, a.attribute, a.l, rng)
    result = AnonymizationResult(tables={f"{tname}_qit": qit, f"{tname}_st": st})
    result.metrics = {"groups": float(qit["group_id"].nunique()), "l": float(a.l)}
    result.summary = "\n".join(
        lines
        + [
            f"anatomized on {a.attribute!r} into {qit['group_id'].nunique()} "
            f"groups, each {a.l}-diverse"
        ]
    )
    return result


def _sensitive_codes(
    out: pd.DataFrame, spec: AnonymizationSpec, models: list[PrivacyModel]
) -> dict[str, np.ndarray]:
    """Codes of every sensitive attribute the models name (their declared order when given)."""
    sensitive = {}
    for m in models:
        if m.hierarchy is not None and m.attribute not in sensitive:
            # Hierarchical EMD: sensitive codes are the hierarchy's leaf codes.
            sensitive[m.attribute] = m.hierarchy.encode(out[m.attribute]).astype(np.int64)
    for m in models:
        if m.attribute is not None and m.attribute not in sensitive:
            col = spec.column(m.attribute)
            order = col.order if col is not None else None
            if order is not None:
                s_codes = pd.Categorical(out[m.attribute], categories=order, ordered=True).codes
                if (s_codes < 0).any():
                    raise SpecError(f"column {m.attribute!r}: values outside its declared 'order'")
            else:
                s_codes, _ = pd.factorize(out[m.attribute], sort=True, use_na_sentinel=False)
            sensitive[m.attribute] = np.asarray(s_codes, dtype=np.int64)
    return sensitive


def _generalize(
    out: pd.DataFrame, spec: AnonymizationSpec, result: AnonymizationResult, lines: list[str]
) -> np.ndarray:
    """Optimal full-domain generalization of the QIs, in place; the records to suppress."""
    qis = spec.quasi_identifiers
    hs = [hier.build(out[q], spec.column(q).generalization.as_config()) for q in qis]
    codes = encode_codes(out, qis, hs)
    models = [_with_hierarchy(m, spec, out) for m in spec.privacy_models]
    problem = Problem(
        hs,
        codes,
        models,
        _sensitive_codes(out, spec, models),
        spec.suppression_limit,
        spec.metric,
        spec.loss_aggregate,
        spec.loss_gs_factor,
    )
    search = optimal_search(problem)
    result.search = search
    if search.best is None:
        raise PrivacyModelUnsatisfiable(
            _unsatisfiable_message(spec, search, len(out), problem.max_outliers)
        )
    node = search.best.node
    cls, n_classes = problem.classes(node)
    _, bad, _ = problem.violations(cls, n_classes)
    # The deduplicated rows' verdict, mapped back to every record.
    suppressed_mask = bad[cls][problem.row_index]
    for d, (q, h, lvl) in enumerate(zip(qis, hs, node, strict=True)):
        if lvl > 0:
            out[q] = h.generalize(codes[:, d], lvl)
    result.transformation = dict(zip(qis, map(int, node), strict=True))
    metrics = problem.metrics(node)
    result.metrics = {k: v for k, v in metrics.items() if not k[5:].isdigit()}
    lines.append(
        f"optimal transformation {result.transformation} ({spec.metric}; searched "
        f"{search.evaluated} of {search.nodes} lattice nodes)"
    )
    for m in spec.privacy_models:
        lines.append(f"guarantees {m.describe()}")
    return suppressed_mask


def _permute(
    out: pd.DataFrame, spec: AnonymizationSpec, rng: KeyedRandom | None, lines: list[str]
) -> None:
    """Permutation within the published equivalence classes, or of the whole column, in place."""
    qis = spec.quasi_identifiers
    classes = None
    for c in spec.columns:
        if c.permute is None:
            continue
        if c.permute == "class":
            if classes is None:
                classes, _ = table_classes(out, qis) if qis else (None, 0)
            out[c.name] = ops.permute(out[c.name], rng, classes, purpose=f"permute:{c.name}")
        else:
            out[c.name] = ops.permute(out[c.name], rng, purpose=f"permute:{c.name}")
        lines.append(
            f"permuted {c.name!r} ({'within classes' if c.permute == 'class' else 'whole column'})"
        )


def _with_hierarchy(m: PrivacyModel, spec: AnonymizationSpec, df: pd.DataFrame) -> PrivacyModel:
    """``m`` with its sensitive hierarchy built, for hierarchical-distance t-closeness."""
    if m.kind != "t-closeness" or m.distance != "hierarchical":
        return m
    if isinstance(m.hierarchy, hier.Hierarchy):
        return m
    if isinstance(m.hierarchy, str):
        return replace(m, hierarchy=hier.from_csv(m.hierarchy, name=m.attribute))
    col = spec.column(m.attribute)
    if col is None or col.generalization is None:
        raise SpecError(f"{m.describe()}: the sensitive column needs a 'generalization' hierarchy")
    return replace(m, hierarchy=hier.build(df[m.attribute], col.generalization.as_config()))


def verify_table(
    df: pd.DataFrame, spec: AnonymizationSpec, reference: pd.DataFrame | None = None
) -> list[CheckResult]:
    """Check every privacy model of ``spec`` on a published table (for the blocking asset check).

    t-closeness compares with ``reference``'s distribution (the input, as the search does) or,
    without it, with the published table's own distribution. Records masked with the marker in
    every quasi-identifier (suppressed, ``suppressed_records="mask"``) are left out.
    """
    qis = spec.quasi_identifiers
    if spec.suppressed_records == "mask" and qis and len(df):
        masked = np.logical_and.reduce([df[q].astype(str).to_numpy() == spec.marker for q in qis])
        df = df.loc[~masked]
    out = []
    for m in spec.privacy_models:
        if m.kind == "k-anonymity":
            out.append(check_k_anonymity(df, qis, m.k))
        elif m.kind == "l-diversity":
            out.append(check_l_diversity(df, qis, m.attribute, m.l, m.variant))
        else:
            col = spec.column(m.attribute)
            order = col.order if col is not None else None
            ref = reference[m.attribute] if reference is not None else None
            h = _with_hierarchy(m, spec, df).hierarchy if m.distance == "hierarchical" else None
            out.append(check_t_closeness(df, qis, m.attribute, m.t, m.distance, order, ref, h))
    return out
