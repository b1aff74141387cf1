"""Anonymization in the metadata: per-column operations and per-table privacy requirements."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from etl_assets.metadata.base import ENV_NAME, _Model


class Hierarchy(_Model):
    """A generalization hierarchy: a `;`-separated file (one row per value, level 0 first)
    or inline rows."""

    file: str | None = Field(default=None, description="path relative to the module folder")
    rows: list[list[str]] | None = Field(default=None, description="inline rows, level 0 first")

    @model_validator(mode="after")
    def _one_source(self) -> Hierarchy:
        if (self.file is None) == (self.rows is None):
            raise ValueError("a hierarchy needs exactly one of file or rows")
        return self


class Generalization(_Model):
    """Generalize values: bins, fixed-width intervals, a hierarchy, date truncation or a prefix."""

    method: Literal["generalize"] = "generalize"
    hierarchy: Hierarchy | None = None
    bins: list[float] | None = Field(default=None, description="ascending bin edges")
    width: list[float] | None = Field(
        default=None, description="interval widths, one per generalization level"
    )
    truncate: list[Literal["week", "month", "quarter", "year"]] | None = Field(
        default=None, description="date truncation levels, finest first"
    )
    keepPrefix: list[int] | None = Field(
        default=None, description="characters kept at each level, longest first"
    )
    level: int | None = Field(
        default=None,
        ge=0,
        description="the level for a column that is not a quasi-identifier (required there);"
        " quasi-identifiers' levels are chosen by the privacy model search",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Generalization:
        kinds = [
            k for k in ("hierarchy", "bins", "width", "truncate", "keepPrefix") if getattr(self, k)
        ]
        if len(kinds) != 1:
            raise ValueError(
                "generalize needs exactly one of hierarchy, bins, width, truncate, keepPrefix"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        if self.bins is not None and (
            len(self.bins) < 2
            or any(b >= a for a, b in zip(self.bins[1:], self.bins, strict=False))
        ):
            raise ValueError("bins needs at least two strictly ascending edges")
        if self.width is not None and any(w <= 0 for w in self.width):
            raise ValueError("every interval width must be greater than 0")
        order = ["week", "month", "quarter", "year"]
        if self.truncate is not None:
            ranks = [order.index(t) for t in self.truncate]
            if ranks != sorted(set(ranks)):
                raise ValueError("truncate levels go from finest to coarsest, each once")
            if "week" in self.truncate[:-1]:
                raise ValueError(
                    "truncate: week can only be the last level (a week can span two months,"
                    " quarters or years)"
                )
        if self.keepPrefix is not None and any(k < 0 for k in self.keepPrefix):
            raise ValueError("keepPrefix counts characters: every entry must be 0 or more")
        return self


class Suppression(_Model):
    """Replace every value of the column with a marker (null by default)."""

    method: Literal["suppress"] = "suppress"
    marker: str | None = Field(default=None, description="the replacement text; null when omitted")


class Permutation(_Model):
    """Shuffle the column, within equivalence classes of the quasi-identifiers or globally."""

    method: Literal["permute"] = "permute"
    within: Literal["class", "table"] = "class"


class Perturbation(_Model):
    """Add noise to a numeric column; the result still respects the column's range."""

    method: Literal["perturb"] = "perturb"
    noise: Literal["laplace", "gaussian", "multiplicative", "round"]
    scale: float | None = Field(default=None, gt=0)
    epsilon: float | None = Field(default=None, gt=0, description="privacy budget (laplace)")
    sensitivity: float | None = Field(default=None, gt=0)
    base: float | None = Field(default=None, gt=0, description="rounding base (round)")

    @model_validator(mode="after")
    def _parameters(self) -> Perturbation:
        if self.noise == "round":
            if self.base is None:
                raise ValueError("noise round needs base")
        elif self.scale is None and not (self.epsilon and self.sensitivity):
            raise ValueError(f"noise {self.noise} needs scale, or epsilon and sensitivity")
        return self


class Pseudonymization(_Model):
    """Replace identifiers with a keyed hash (HMAC); the key comes from `keyEnv`."""

    method: Literal["pseudonymize"] = "pseudonymize"
    keyEnv: str = Field(default="DM_PSEUDONYM_KEY", pattern=ENV_NAME)


class Anatomization(_Model):
    """Publish this sensitive column in a separate table linked to the quasi-identifiers by group."""

    method: Literal["anatomize"] = "anatomize"


ColumnAnonymization = Annotated[
    Generalization | Suppression | Permutation | Perturbation | Pseudonymization | Anatomization,
    Field(discriminator="method"),
]


class PrivacyModel(_Model):
    """A privacy model the table must satisfy after anonymization."""

    type: Literal["k-anonymity", "l-diversity", "t-closeness"]
    k: int | None = Field(default=None, ge=2)
    l: int | None = Field(default=None, ge=2)  # noqa: E741 - the model's own letter
    t: float | None = Field(default=None, gt=0, le=1)
    variant: Literal["distinct", "entropy"] | None = None
    distance: Literal["equal", "ordered", "hierarchical"] | None = Field(
        default=None,
        description="t-closeness ground distance; hierarchical uses the sensitive column's"
        " generalization hierarchy",
    )
    attribute: str | None = Field(default=None, description="the sensitive column (l, t)")

    @model_validator(mode="after")
    def _parameter(self) -> PrivacyModel:
        need = {"k-anonymity": "k", "l-diversity": "l", "t-closeness": "t"}[self.type]
        if getattr(self, need) is None:
            raise ValueError(f"{self.type} needs {need}")
        return self


class Privacy(_Model):
    """The table's privacy requirements: quasi-identifiers, sensitive attributes and models."""

    quasiIdentifiers: list[str] = Field(min_length=1)
    sensitive: list[str] = Field(default_factory=list)
    models: list[PrivacyModel] = Field(min_length=1)
    suppressionLimit: float = Field(default=0.0, ge=0, le=1, description="fraction of records")
    metric: Literal[
        "loss", "entropy", "entropy_monotonic", "discernibility", "discernibility_monotonic"
    ] = Field(default="loss", description="the information loss the search minimizes (ARX's)")
    lossGsFactor: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="ARX's gs-factor of the loss metric: below 0.5 suppression is cheaper,"
        " above 0.5 generalization is",
    )
