"""The anonymization specification of one table: plain dataclasses, buildable from a dict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .hierarchy import Hierarchy
from .metrics import METRICS

Role = Literal["quasi_identifier", "sensitive", "identifier", "insensitive"]


class SpecError(ValueError):
    """The anonymization spec is invalid; the message names the field and what was expected."""


@dataclass
class Generalization:
    """How a quasi-identifier is generalized.

    kind: ``hierarchy`` (``path`` to a ``;`` CSV, inline ``tree`` {value: parent}, or ``levels``),
    ``intervals`` (``widths`` or ``bins``), ``date`` (``date_levels`` among day/week/month/quarter/
    year), ``prefix`` (``keep``: characters kept per level).
    """

    kind: Literal["hierarchy", "intervals", "date", "prefix"] = "hierarchy"
    path: str | None = None
    sep: str = ";"
    tree: dict[str, str | None] | None = None
    levels: list | None = None
    widths: list[float] | None = None
    bins: list[list[float]] | None = None
    date_levels: list[str] | None = None
    keep: list[int] | None = None
    hierarchy: Hierarchy | None = None  # a prebuilt hierarchy (programmatic use)

    def as_config(self) -> Mapping[str, Any] | Hierarchy:
        """The mapping ``hierarchy.build`` understands."""
        if self.hierarchy is not None:
            return self.hierarchy
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "hierarchy"}


@dataclass
class Perturbation:
    """Noise, rounding and clipping of a numeric column, applied in that order.

    kind: ``laplace`` / ``gaussian`` (``scale``, or ``epsilon`` + ``sensitivity`` [+ ``delta`` for
    gaussian]), ``multiplicative`` (relative ``scale``: x * (1 + N(0, scale))), or None.
    """

    kind: Literal["laplace", "gaussian", "multiplicative"] | None = None
    scale: float | None = None
    epsilon: float | None = None
    sensitivity: float = 1.0
    delta: float = 1e-5
    round_to: float | None = None
    clip_min: float | None = None
    clip_max: float | None = None


@dataclass
class ColumnSpec:
    """Per-column role and operations."""

    name: str
    role: Role = "insensitive"
    generalization: Generalization | None = None
    perturbation: Perturbation | None = None
    pseudonymize: bool = False
    permute: Literal["class", "column"] | None = None
    suppress: bool = False  # cell suppression: every value replaced by the marker
    order: list | None = None  # value order for ordered-distance t-closeness


@dataclass
class PrivacyModel:
    """One privacy model: k-anonymity, l-diversity (distinct|entropy) or t-closeness (equal|ordered)."""

    kind: Literal["k-anonymity", "l-diversity", "t-closeness"]
    k: int | None = None
    l: int | float | None = None  # noqa: E741 - the literature's name
    variant: Literal["distinct", "entropy"] = "distinct"
    t: float | None = None
    distance: Literal["equal", "ordered", "hierarchical"] = "equal"
    attribute: str | None = None  # the sensitive attribute (defaults to the only one)
    # hierarchical distance: the sensitive attribute's hierarchy (the engine builds it from the
    # sensitive column's ``generalization``; programmatic callers may set it directly)
    hierarchy: Hierarchy | str | None = None

    def describe(self) -> str:
        """Short human-readable name, e.g. ``k-anonymity k=5``."""
        if self.kind == "k-anonymity":
            return f"k-anonymity k={self.k}"
        if self.kind == "l-diversity":
            return f"{self.variant} l-diversity l={self.l} on {self.attribute!r}"
        return f"t-closeness t={self.t} ({self.distance} distance) on {self.attribute!r}"


@dataclass
class Anatomization:
    """Publish QIs and one sensitive attribute as two tables (QIT, ST) with l-diverse groups."""

    attribute: str
    l: int = 2  # noqa: E741


@dataclass
class AnonymizationSpec:
    """Everything the engine needs to anonymize one table."""

    table: str
    columns: list[ColumnSpec] = field(default_factory=list)
    privacy_models: list[PrivacyModel] = field(default_factory=list)
    suppression_limit: float = 0.0  # fraction of records that may be suppressed
    metric: Literal[
        "loss", "entropy", "entropy_monotonic", "discernibility", "discernibility_monotonic"
    ] = "loss"
    loss_aggregate: Literal["geometric", "arithmetic"] = "geometric"  # ARX MetricMDNMLoss default
    # ARX Loss gs-factor: 0.5 treats generalization and suppression equally (ARX's default);
    # < 0.5 makes suppression cheaper, > 0.5 generalization cheaper.
    loss_gs_factor: float = 0.5
    suppressed_records: Literal["drop", "mask"] = "drop"
    marker: str = "*"
    anatomization: Anatomization | None = None

    @property
    def quasi_identifiers(self) -> list[str]:
        """QI column names in spec order."""
        return [c.name for c in self.columns if c.role == "quasi_identifier"]

    @property
    def sensitive_attributes(self) -> list[str]:
        """Sensitive column names in spec order."""
        return [c.name for c in self.columns if c.role == "sensitive"]

    def column(self, name: str) -> ColumnSpec | None:
        """The spec of column ``name`` or None."""
        return next((c for c in self.columns if c.name == name), None)

    def validate(self) -> AnonymizationSpec:
        """Check cross-field consistency and fill defaults; returns self."""
        where = f"anonymization spec of table {self.table!r}"
        if not 0.0 <= self.suppression_limit <= 1.0:
            raise SpecError(
                f"{where}: suppression_limit must be a fraction in [0, 1], got {self.suppression_limit}"
            )
        if not 0.0 <= self.loss_gs_factor <= 1.0:
            raise SpecError(f"{where}: loss_gs_factor must be in [0, 1], got {self.loss_gs_factor}")
        if self.metric not in METRICS:
            raise SpecError(
                f"{where}: metric {self.metric!r}; expected one of {', '.join(METRICS)}"
            )
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise SpecError(f"{where}: a column is listed twice in columns")
        sens = self.sensitive_attributes
        for m in self.privacy_models:
            if m.kind == "k-anonymity":
                if not isinstance(m.k, int) or m.k < 1:
                    raise SpecError(f"{where}: k-anonymity needs an integer k >= 1, got {m.k!r}")
                continue
            if m.kind not in ("l-diversity", "t-closeness"):
                raise SpecError(
                    f"{where}: privacy model {m.kind!r}; expected k-anonymity, l-diversity, t-closeness"
                )
            if m.attribute is None:
                if len(sens) != 1:
                    raise SpecError(
                        f"{where}: {m.kind} needs 'attribute' (sensitive columns: {sens})"
                    )
                m.attribute = sens[0]
            if m.kind == "l-diversity" and (
                m.l is None or m.l < 1 or m.variant not in ("distinct", "entropy")
            ):
                raise SpecError(f"{where}: l-diversity needs l >= 1 and variant distinct|entropy")
            if m.kind == "t-closeness" and (
                m.t is None
                or not 0 <= m.t <= 1
                or m.distance not in ("equal", "ordered", "hierarchical")
            ):
                raise SpecError(
                    f"{where}: t-closeness needs t in [0, 1] and distance equal|ordered|hierarchical"
                )
            if m.kind == "t-closeness" and m.distance == "hierarchical" and not m.hierarchy:
                col = self.column(m.attribute)
                if col is None or col.generalization is None:
                    raise SpecError(
                        f"{where}: hierarchical t-closeness on {m.attribute!r} needs a "
                        "'generalization' hierarchy on that sensitive column"
                    )
        if self.privacy_models and not self.quasi_identifiers:
            raise SpecError(
                f"{where}: privacy models given but no column has role quasi_identifier"
            )
        for c in self.columns:
            if c.role == "quasi_identifier" and c.generalization is None and self.privacy_models:
                raise SpecError(f"{where}: quasi-identifier {c.name!r} needs a generalization")
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnonymizationSpec:
        """Build from plain dicts/lists (e.g. parsed JSON-LD); unknown keys raise ``SpecError``."""
        data = dict(data)
        cols = [
            _build(ColumnSpec, c, f"columns[{i}]") for i, c in enumerate(data.pop("columns", []))
        ]
        models = [
            _build(PrivacyModel, m, f"privacy_models[{i}]")
            for i, m in enumerate(data.pop("privacy_models", []))
        ]
        anat = data.pop("anatomization", None)
        spec = _build(cls, data, "spec")
        spec.columns, spec.privacy_models = cols, models
        spec.anatomization = _build(Anatomization, anat, "anatomization") if anat else None
        return spec.validate()


_NESTED = {"generalization": Generalization, "perturbation": Perturbation}


def _build(kind: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name for f in fields(kind)}
    unknown = set(data) - known
    if unknown:
        raise SpecError(
            f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(known)}"
        )
    kwargs = dict(data)
    if isinstance(kwargs.get("generalization"), str):  # shorthand: a hierarchy file path
        kwargs["generalization"] = {"path": kwargs["generalization"]}
    for key, sub in _NESTED.items():
        if key in kwargs and isinstance(kwargs[key], Mapping) and key in known:
            kwargs[key] = _build(sub, kwargs[key], f"{where}.{key}")
    try:
        return kind(**kwargs)
    except TypeError as exc:
        raise SpecError(f"{where}: {exc}") from None
