"""Anonymization engine: generalization lattice search, privacy checks, record operations."""

from .engine import AnonymizationResult, PrivacyModelUnsatisfiable, anonymize_table, verify_table
from .evaluation import Problem, encode_codes
from .hierarchy import (
    Hierarchy,
    HierarchyError,
    dates,
    from_csv,
    from_levels,
    from_tree,
    intervals,
    prefix_mask,
)
from .metrics import aggregate_loss
from .operations import anatomize, permute, perturb, pseudonymize, suppress_cells, suppress_records
from .privacy import CheckResult, check_k_anonymity, check_l_diversity, check_t_closeness
from .search import SearchResult, exhaustive_search, optimal_search
from .spec import (
    Anatomization,
    AnonymizationSpec,
    ColumnSpec,
    Generalization,
    Perturbation,
    PrivacyModel,
    SpecError,
)

__all__ = [
    "Anatomization",
    "AnonymizationResult",
    "AnonymizationSpec",
    "CheckResult",
    "ColumnSpec",
    "Generalization",
    "Hierarchy",
    "HierarchyError",
    "Perturbation",
    "PrivacyModel",
    "PrivacyModelUnsatisfiable",
    "Problem",
    "SearchResult",
    "SpecError",
    "aggregate_loss",
    "anatomize",
    "anonymize_table",
    "check_k_anonymity",
    "check_l_diversity",
    "check_t_closeness",
    "dates",
    "encode_codes",
    "exhaustive_search",
    "from_csv",
    "from_levels",
    "from_tree",
    "intervals",
    "optimal_search",
    "permute",
    "perturb",
    "prefix_mask",
    "pseudonymize",
    "suppress_cells",
    "suppress_records",
    "verify_table",
]
