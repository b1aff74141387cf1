"""The anonymize stage in Dagster: one asset per table."""

import dagster as dg
import pandas as pd

from etl_assets.anonymize.batches import BatchedOutput, anonymize_staged, batch_local
from etl_assets.anonymize.engine import PrivacyModelUnsatisfiable
from etl_assets.anonymize.hierarchy import HierarchyError
from etl_assets.anonymize.module_spec import check_spec, needs_anonymization, secret_key_env
from etl_assets.anonymize.spec import SpecError
from etl_assets.anonymize.table import anonymize_for_module, drop_orphans
from etl_assets.asset_metadata import column_lineage, column_schema
from etl_assets.metadata import Table
from etl_assets.quarantine import concat_quarantine
from etl_assets.results import AnonymizeCounts, StageResultMissing
from etl_assets.stages import StageKit, restricted_errors
from resources.deployment import SecretsResource
from resources.io_manager import IO_MANAGER_KEY, ParquetIOManager, StoredTables
from resources.outbox import OutboxResource
from resources.staged import StagedTable

Stored = pd.DataFrame | StagedTable


def published_keys(stored: Stored | StoredTables, name: str, columns: list[str]) -> pd.DataFrame:
    """The columns of a parent's published table `name` that a child's foreign keys use."""
    if isinstance(stored, StagedTable):
        return stored.read([c for c in columns if c in stored.columns]).to_pandas(
            types_mapper=pd.ArrowDtype
        )
    if isinstance(stored, StoredTables):
        return stored.columns(name, columns)
    return stored[name]


def _fk_columns(table: Table, parent: str) -> list[str]:
    return [
        c.foreignKey.column for c in table.columns if c.foreignKey and c.foreignKey.table == parent
    ]


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
    key_env = secret_key_env(table)

    @dg.asset(
        key=kit.key("anonymize", table.name),
        **kit.asset_args(stage="anonymize"),
        ins=ins,
        kinds=kit.kinds("anonymize", "pandas"),
        io_manager_key=IO_MANAGER_KEY,
        description=f"Table `{table.name}` anonymized as its metadata declares"
        " (generalization, suppression, anatomization, permutation, perturbation,"
        " pseudonymization). Its records are published once the outbox check has verified the"
        " privacy models; what it removed is in the restricted quarantine.",
    )
    def _anonymize(
        context: dg.AssetExecutionContext,
        outbox: OutboxResource,
        secrets: SecretsResource,
        dm_io_manager: dg.ResourceParam[ParquetIOManager],
        clean: StagedTable,
        **parents: Stored | StoredTables,
    ):
        version = kit.version(context)
        key = secrets.key(key_env) if key_env else None

        def parent_keys() -> dict[str, pd.DataFrame]:
            return {
                p: published_keys(parents[f"parent_{p}"], p, _fk_columns(table, p))
                for p in fk_parents
            }

        if isinstance(clean, StagedTable) and clean.num_rows and batch_local(table):
            with restricted_errors(outbox, kit, version, f"anonymize {table.name}", secrets):
                with dm_io_manager.stage(context.asset_key, version) as writer:
                    # the frames are passed, not kept: the batched path holds their key sets
                    out = anonymize_staged(
                        clean, table, kit.loaded, version, key, parent_keys(), writer
                    )
            return _batched_output(kit, table, outbox, version, source_key, out)
        parent_tables = parent_keys()
        if isinstance(clean, StagedTable):
            clean = clean.to_pandas()
        with restricted_errors(outbox, kit, version, f"anonymize {table.name}", secrets):
            try:
                result = anonymize_for_module(clean, table, kit.loaded, version, key)
            except (PrivacyModelUnsatisfiable, SpecError, HierarchyError) as exc:
                # no retry can fix it: the data cannot meet the model, or the spec is wrong;
                # these messages give counts and names, never values
                raise dg.Failure(description=f"{table.name}: {exc}", allow_retries=False) from None
            tables, orphans = drop_orphans(result.tables, table, parent_tables, version)
        removed = concat_quarantine([result.quarantine, orphans])
        outbox.write_quarantine(kit.module, version, f"{table.name}__anonymize", removed)
        first = next(iter(tables.values()))
        counts = AnonymizeCounts(
            rows_in=len(clean),
            published=len(first),
            suppressed=result.suppressed,
            parent_suppressed=len(orphans),
        )
        context.log.info(counts.log_text(table.name, result.metrics))
        metadata = {
            # not yet checked against the privacy models: no preview here (the outbox has one)
            "dagster/column_schema": column_schema(first),
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
        # a handle, not the frames: an in-process run keeps every output until it ends
        stored = dm_io_manager.store_tables(context.asset_key, version, tables)
        return dg.Output(stored, metadata=metadata)

    return _anonymize


def _batched_output(
    kit: StageKit,
    table: Table,
    outbox: OutboxResource,
    version: str,
    source_key,
    out: BatchedOutput,
) -> dg.Output:
    """The Output of the batched path: the same counts and metadata as the whole-table one."""
    outbox.write_quarantine(
        kit.module,
        version,
        f"{table.name}__anonymize",
        concat_quarantine([out.quarantine, out.orphans]),
    )
    counts = AnonymizeCounts(
        rows_in=out.rows_in,
        published=out.staged.num_rows,
        suppressed=out.suppressed,
        parent_suppressed=len(out.orphans),
    )
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in out.staged.schema]
    )
    metadata = {
        "dagster/column_schema": schema,
        "dagster/row_count": dg.MetadataValue.int(out.staged.num_rows),
        **kit.metadata(version),
        **{f"dm/{k}": v for k, v in out.metrics.items()},
        **counts.to_metadata(),
        "dm/rejected_parent_suppressed": dg.MetadataValue.int(len(out.orphans)),
        "dm/published_tables": table.name,
        "dagster/column_lineage": column_lineage(
            out.staged.columns, {source_key: [c.name for c in table.columns]}
        ),
    }
    if out.summary:
        metadata["dm/anonymization"] = dg.MetadataValue.md(out.summary)
    return dg.Output(out.staged, metadata=metadata)


def anonymize_checks(kit: StageKit, table: Table) -> list[dg.AssetChecksDefinition]:
    """A blocking check that anonymization accounts for every record it removed."""
    target = kit.key("anonymize", table.name)

    @dg.asset_check(
        asset=target,
        name="rows_conserved",
        blocking=True,
        partitions_def=kit.partitions,
        op_tags=kit.op_tags("anonymize"),
        description="rows in = rows published + suppressed + children of suppressed parents,"
        " and the quarantine holds one rejected record for each removed one",
    )
    def _conservation(
        context: dg.AssetCheckExecutionContext, outbox: OutboxResource
    ) -> dg.AssetCheckResult:
        version = kit.version(context)
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=target, asset_partitions=[context.partition_key]),
            limit=1,
        ).records
        try:
            if not records:
                raise StageResultMissing(f"{target.to_user_string()} has no materialization")
            c = AnonymizeCounts.from_metadata(records[0].asset_materialization.metadata)
        except StageResultMissing as exc:
            return dg.AssetCheckResult(passed=False, description=f"cannot verify: {exc}")
        name = f"{table.name}__anonymize"
        quarantined = outbox.quarantine_actions(kit.module, version, name).get("rejected", 0)
        problems = []
        if not c.conserved:
            problems.append(
                f"{c.rows_in} in != {c.published} published + {c.suppressed} suppressed"
                f" + {c.parent_suppressed} whose parent was suppressed"
            )
        if quarantined != c.suppressed + c.parent_suppressed:
            problems.append(
                f"the quarantine holds {quarantined} records removed by anonymization,"
                f" expected {c.suppressed + c.parent_suppressed}"
            )
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={"rows_in": c.rows_in, "published": c.published},
            description="; ".join(problems)
            or f"{c.rows_in} in = {c.published} published + {c.suppressed} suppressed"
            f" + {c.parent_suppressed} whose parent was suppressed",
        )

    return [_conservation]
