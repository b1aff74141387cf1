"""Field rules of the clean stage: empty values, ranges, dedupe, primary and foreign keys.

One module per rule; `engine.apply_rules` runs them in order (see its docstring)."""

from etl_assets.clean.rules.checks import check_conservation, check_foreign_keys, check_unique_key
from etl_assets.clean.rules.engine import apply_rules
from etl_assets.clean.rules.result import RulesResult

__all__ = [
    "RulesResult",
    "apply_rules",
    "check_conservation",
    "check_foreign_keys",
    "check_unique_key",
]
