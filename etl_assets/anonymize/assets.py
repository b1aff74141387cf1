"""The anonymize stage in Dagster: one asset per table."""

import dagster as dg
import pandas as pd

from etl_assets.anonymize.engine import PrivacyModelUnsatisfiable
from etl_assets.anonymize.hierarchy import HierarchyError
from etl_assets.anonymize.module_spec import check_spec, needs_anonymization, pseudonym_key_env
from etl_assets.anonymize.spec import SpecError
from etl_assets.anonymize.table import anonymize_for_module, drop_orphans
from etl_assets.asset_metadata import column_lineage, table_metadata
from etl_assets.metadata import Table
from etl_assets.results import AnonymizeCounts
from etl_assets.stages import StageKit
from resources.deployment import SecretsResource
from resources.io_manager import IO_MANAGER_KEY
from resources.outbox import OutboxResource


def orphan_parents(kit: StageKit, table: Table) -> list[str]:
    """Parents published as one table: records whose parent was suppressed must go too."""
    return sorted(
        {
            c.foreignKey.table
            for c in table.columns
            if c.foreignKey and len(kit.model.table(c.foreignKey.table).published_names) == 1
        }
    )


def anonymize_asset(kit: StageKit, table: Table) -> dg.AssetsDefinition:
    if needs_anonymization(table):
        check_spec(table, kit.loaded.folder)  # a SpecError here is the module's load error
    source_key = kit.key("clean", table.name)
    fk_parents = orphan_parents(kit, table)
    ins = {"clean": dg.AssetIn(key=source_key)}
    ins.update({f"parent_{p}": dg.AssetIn(key=kit.key("anonymize", p)) for p in fk_parents})
    key_env = pseudonym_key_env(table)

    @dg.asset(
        key=kit.key("anonymize", table.name),
        **kit.asset_args(stage="anonymize"),
        ins=ins,
        kinds={"pandas"},
        io_manager_key=IO_MANAGER_KEY,
        description=f"Table `{table.name}` anonymized as its metadata declares"
        " (generalization, suppression, anatomization, permutation, perturbation,"
        " pseudonymization) and checked against its privacy models.",
    )
    def _anonymize(
        context: dg.AssetExecutionContext,
        outbox: OutboxResource,
        secrets: SecretsResource,
        clean: pd.DataFrame,
        **parents: dict[str, pd.DataFrame],
    ):
        version = kit.version(context)
        key = secrets.key(key_env) if key_env else None
        try:
            result = anonymize_for_module(clean, table, kit.loaded, version, key)
        except (PrivacyModelUnsatisfiable, SpecError, HierarchyError) as exc:
            # no retry can fix it: the data cannot meet the declared model, or the spec is wrong
            raise dg.Failure(description=f"{table.name}: {exc}", allow_retries=False) from exc
        parent_tables = {p: parents[f"parent_{p}"][p] for p in fk_parents}
        tables, orphans = drop_orphans(result.tables, table, parent_tables, version)
        outbox.write_quarantine(kit.module, version, f"{table.name}__anonymize", orphans)
        first = next(iter(tables.values()))
        counts = AnonymizeCounts(
            rows_in=len(clean),
            published=len(first),
            suppressed=result.suppressed,
            parent_suppressed=len(orphans),
        )
        metadata = {
            **table_metadata(first),
            "dagster/row_count": dg.MetadataValue.int(sum(len(d) for d in tables.values())),
            **kit.metadata(version),
            **{f"dm/{k}": v for k, v in result.metrics.items()},
            **counts.to_metadata(),
            "dm/rejected_parent_suppressed": dg.MetadataValue.int(len(orphans)),
            "dm/published_tables": ", ".join(tables),
            "dagster/column_lineage": column_lineage(
                list(first.columns), {source_key: list(clean.columns)}
            ),
        }
        if result.summary:
            metadata["dm/anonymization"] = dg.MetadataValue.md(result.summary)
        return dg.Output(tables, metadata=metadata)

    return _anonymize
