"""Pure checks of a rules result, each returning (passed, message); the clean stage turns them
into blocking Dagster asset checks."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from etl_assets.clean.rules.foreign_keys import parent_values
from etl_assets.clean.rules.grouping import candidates, group_codes
from etl_assets.clean.rules.result import RulesResult
from etl_assets.clean.rules.working_set import arrow_of, take, to_bool
from etl_assets.metadata import Table


def check_conservation(result: RulesResult) -> tuple[bool, str]:
    """rows_in == rows_out + rejected + duplicates, and the counts agree with the data and the
    quarantine (one `rejected` quarantine row per removed record)."""
    c = result.counts
    problems = []
    if c["rows_in"] != c["rows_out"] + c["rejected"] + c["duplicates"]:
        problems.append(
            f"rows_in {c['rows_in']} != rows_out {c['rows_out']} + rejected {c['rejected']}"
            f" + duplicates {c['duplicates']}"
        )
    if c["rows_out"] != len(result.data):
        problems.append(f"rows_out {c['rows_out']} but the data has {len(result.data)} rows")
    by_rule = sum(
        c.get(k, 0)
        for k in (
            "rejected_empty",
            "rejected_range",
            "rejected_primary_key",
            "rejected_foreign_key",
        )
    )
    if by_rule != c["rejected"]:
        problems.append(f"rejected {c['rejected']} but the rules rejected {by_rule}")
    quarantined = int((result.quarantine["action"] == "rejected").sum())
    if quarantined != c["rejected"] + c["duplicates"]:
        problems.append(
            f"{quarantined} rejected records in the quarantine, expected"
            f" {c['rejected'] + c['duplicates']}"
        )
    if problems:
        return False, "; ".join(problems)
    return True, (
        f"{c['rows_in']} in = {c['rows_out']} out + {c['rejected']} rejected"
        f" + {c['duplicates']} duplicates"
    )


def check_unique_key(data: pd.DataFrame, table: Table) -> tuple[bool, str]:
    """The primary key is non-null and unique over the cleaned records."""
    key = table.primaryKey
    if not key:
        return True, f"table {table.name} has no primary key"
    missing = [c for c in key if c not in data.columns]
    if missing:
        return False, f"key column(s) {', '.join(missing)} missing from the data"
    arrays = [arrow_of(data[c]) for c in key]
    nulls = sum(a.null_count for a in arrays)
    if nulls:
        return False, f"{nulls} null value(s) in primary key ({', '.join(key)})"
    positions = candidates(arrays, np.ones(len(data), dtype=bool))
    if len(positions):
        codes = group_codes([take(a, positions) for a in arrays])
        dup = pd.Series(codes).duplicated(keep=False).to_numpy()
        if dup.any():
            return False, (
                f"{int(dup.sum())} records share a primary key ({', '.join(key)}) in the clean"
                " data (values are restricted: see the clean step's storage)"
            )
    return True, f"primary key ({', '.join(key)}) unique over {len(data)} records"


def check_foreign_keys(
    data: pd.DataFrame, table: Table, parents: Mapping[str, pd.DataFrame]
) -> tuple[bool, str]:
    """Every non-null foreign-key value exists in the referenced column of the parent."""
    problems = []
    checked = []
    for column in table.columns:
        fk = column.foreignKey
        if fk is None:
            continue
        checked.append(column.name)
        try:
            allowed = parent_values(parents, table.name, column.name, fk.table, fk.column)
        except KeyError as e:
            problems.append(str(e.args[0]))
            continue
        values = arrow_of(data[column.name])
        if allowed.type != values.type:
            allowed = allowed.cast(values.type)
        dangling = ~to_bool(pc.is_in(values, value_set=allowed)) & ~to_bool(values.is_null())
        if dangling.any():
            problems.append(
                f"{int(dangling.sum())} value(s) of {column.name} not in {fk.table}.{fk.column}"
            )
    if problems:
        return False, "; ".join(problems)
    if not checked:
        return True, f"table {table.name} has no foreign keys"
    return True, f"foreign keys {', '.join(checked)} all resolve"
