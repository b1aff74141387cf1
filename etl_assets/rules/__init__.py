"""Field rules of the clean stage: empty values, ranges, dedupe, primary and foreign keys.

One module per rule; `engine.apply_rules` runs them in order (see its docstring)."""

from etl_assets.rules.engine import (
    RulesResult,
    apply_rules,
    check_conservation,
    check_foreign_keys,
    check_unique_key,
)

__all__ = [
    "RulesResult",
    "apply_rules",
    "check_conservation",
    "check_foreign_keys",
    "check_unique_key",
]
