"""The clean stage in Dagster: one asset per table and the blocking checks on its output."""

import dagster as dg
import pandas as pd

from etl_assets.asset_metadata import (
    TableProfile,
    column_lineage,
    quarantine_summary,
    staged_metadata,
)
from etl_assets.clean.rules import check_foreign_keys, check_unique_key
from etl_assets.clean.streamed import clean_streamed
from etl_assets.clean.table import Source, clean_table
from etl_assets.extract.units import extraction_units
from etl_assets.metadata import Table
from etl_assets.quarantine import quarantine_file_schema
from etl_assets.results import CleanCounts, StageResultMissing
from etl_assets.stages import StageKit, restricted_errors
from resources.deployment import PrivacyResource
from resources.io_manager import IO_MANAGER_KEY, ParquetIOManager
from resources.outbox import OutboxResource
from resources.staged import StagedTable


def _parents(table: Table) -> list[str]:
    return sorted({c.foreignKey.table for c in table.columns if c.foreignKey})


def _referenced(table: Table, parent: str) -> list[str]:
    """The columns of `parent` that `table`'s foreign keys reference."""
    return sorted(
        {
            c.foreignKey.column
            for c in table.columns
            if c.foreignKey and c.foreignKey.table == parent
        }
    )


def key_columns(source: Source, columns: list[str]) -> pd.DataFrame:
    """Only `columns` of a stored table (those it has): the compact columns a key check or a
    foreign-key lookup needs, never the whole table."""
    if isinstance(source, StagedTable):
        present = [c for c in columns if c in source.columns]
        return source.read(present).to_pandas(types_mapper=pd.ArrowDtype)
    return source[[c for c in columns if c in source.columns]]


def clean_asset(kit: StageKit, table: Table) -> dg.AssetsDefinition:
    units = extraction_units(kit.model, table.name)
    ins = {f"src_{i}": dg.AssetIn(key=kit.key("extract", u.name)) for i, u in enumerate(units)}
    parents = _parents(table)
    ins.update({f"parent_{p}": dg.AssetIn(key=kit.key("clean", p)) for p in parents})
    upstream_cols = {kit.key("extract", u.name): [c.name for c in table.columns] for u in units}

    @dg.asset(
        key=kit.key("clean", table.name),
        **kit.asset_args(stage="clean"),
        ins=ins,
        kinds=kit.kinds("clean", "pandas"),
        io_manager_key=IO_MANAGER_KEY,
        description=f"Table `{table.name}`: sources merged, typed, field rules applied"
        " (empty values, ranges, primary and foreign keys, duplicates). Rejected records go to"
        " the quarantine with their reason. **Restricted zone**: cleaned records before"
        " anonymization; Dagster shows counts, types and a profile, never values.",
    )
    def _clean(
        context: dg.AssetExecutionContext,
        outbox: OutboxResource,
        privacy: PrivacyResource,
        dm_io_manager: dg.ResourceParam[ParquetIOManager],
        **inputs: Source,
    ):
        version = kit.version(context)
        frames = [inputs[f"src_{i}"] for i in range(len(units))]
        parent_frames = {
            p: key_columns(inputs[f"parent_{p}"], _referenced(table, p)) for p in parents
        }
        streamed = sum(len(f) for f in frames) > dm_io_manager.batch_rows
        with restricted_errors(outbox, kit, version, f"clean {table.name}"):
            if streamed:  # bounded memory: the table rules on compact columns
                result = clean_streamed(
                    frames, table, kit.model, version=version, parents=parent_frames,
                    scratch=dm_io_manager.scratch(context.asset_key, version, "ruled"),
                    rejects=dm_io_manager.scratch(context.asset_key, version, "rejects"),
                )  # fmt: skip
            else:
                result = clean_table(
                    frames, table, kit.model, version=version, parents=parent_frames,
                    filtered=False,
                )  # fmt: skip
        # the cleaned records go to step storage a batch at a time: no filtered copy
        try:
            with dm_io_manager.stage(context.asset_key, version) as writer:
                profile = TableProfile()
                batches = profile.watch(result.batches(dm_io_manager.batch_rows))
                staged = writer.write_all(batches).close()
            qpath = outbox.write_quarantine_batches(
                kit.module,
                version,
                table.name,
                quarantine_file_schema(),
                result.quarantine_batches(),
            )
            rejected = result.rejected_rows
            summary = quarantine_summary(result.quarantine_batches()) if rejected else None
        finally:
            result.discard()
        if result.key_map is not None and len(result.key_map):
            outbox.write_key_map(kit.module, version, table.name, result.key_map)
        for col in result.missing_columns:
            context.log.warning(f"{table.name}: no source provides column {col!r}; it is empty")
        if result.dropped_columns:
            context.log.info(
                f"{table.name}: strict schema dropped undeclared columns"
                f" {', '.join(result.dropped_columns)}"
            )
        context.log.info(result.counts.log_text(table.name))
        metadata = {
            **staged_metadata(staged, profile, privacy.restricted_previews),
            **kit.metadata(version),
            **result.counts.to_metadata(),
            "dm/quarantine_path": dg.MetadataValue.path(qpath),
            "dagster/column_lineage": column_lineage(staged.columns, upstream_cols),
        }
        if summary is not None:
            metadata["dm/quarantine_summary"] = summary
        return dg.Output(staged, metadata=metadata)

    return _clean


def _latest_counts(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> CleanCounts:
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[context.partition_key]), limit=1
    ).records
    if not records:
        raise StageResultMissing(f"{key.to_user_string()} has no materialization for this version")
    return CleanCounts.from_metadata(records[0].asset_materialization.metadata)


def conservation_check(kit: StageKit, table: Table) -> dg.AssetChecksDefinition:
    """rows extracted = rows out + rejected + duplicates, and the data and the quarantine agree."""
    target = kit.key("clean", table.name)

    @dg.asset_check(
        asset=target,
        name="rows_conserved",
        blocking=True,
        partitions_def=kit.partitions,
        op_tags=kit.op_tags("clean"),
        description="rows extracted = rows out + rows rejected + duplicates merged; the clean"
        " data has rows out records and the quarantine one rejected record for each other",
    )
    def _conservation(
        context: dg.AssetCheckExecutionContext, outbox: OutboxResource, data: StagedTable
    ) -> dg.AssetCheckResult:
        version = kit.version(context)
        try:
            c = _latest_counts(context, target)
        except StageResultMissing as exc:
            return dg.AssetCheckResult(passed=False, description=f"cannot verify: {exc}")
        quarantined = outbox.quarantine_actions(kit.module, version, table.name).get("rejected", 0)
        problems = []
        if not c.conserved:
            problems.append(
                f"{c.rows_extracted} extracted != {c.rows_out} out + {c.rejected} rejected"
                f" + {c.duplicates} duplicates"
            )
        if len(data) != c.rows_out:
            problems.append(f"the clean data has {len(data)} rows, the counts say {c.rows_out}")
        if quarantined != c.rejected + c.duplicates:
            problems.append(
                f"the quarantine holds {quarantined} rejected records,"
                f" expected {c.rejected + c.duplicates}"
            )
        accounted = c.rows_out + c.rejected + c.duplicates
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={"rows_extracted": c.rows_extracted, "accounted": accounted},
            description="; ".join(problems)
            or f"{c.rows_extracted} extracted, {accounted} accounted for",
        )

    return _conservation


def clean_checks(kit: StageKit, table: Table) -> list[dg.AssetChecksDefinition]:
    """Blocking checks on the clean output: conservation, key uniqueness, reference integrity."""
    target = kit.key("clean", table.name)
    checks = [conservation_check(kit, table)]

    if table.primaryKey:

        @dg.asset_check(
            asset=target,
            name="primary_key_unique",
            blocking=True,
            partitions_def=kit.partitions,
            op_tags=kit.op_tags("clean"),
            description=f"({', '.join(table.primaryKey)}) is unique in the clean output",
        )
        def _unique(
            context: dg.AssetCheckExecutionContext, data: StagedTable
        ) -> dg.AssetCheckResult:
            passed, message = check_unique_key(key_columns(data, table.primaryKey), table)
            return dg.AssetCheckResult(passed=passed, description=message)

        checks.append(_unique)

    parents = _parents(table)
    if parents:

        @dg.asset_check(
            asset=target,
            name="foreign_keys_resolve",
            blocking=True,
            partitions_def=kit.partitions,
            op_tags=kit.op_tags("clean"),
            additional_deps=[kit.key("clean", p) for p in parents],
            description="every non-null foreign key value exists in its referenced table",
        )
        def _fks(
            context: dg.AssetCheckExecutionContext,
            data: StagedTable,
            dm_io_manager: dg.ResourceParam[ParquetIOManager],
        ):
            version = kit.version(context)
            frames = {
                p: key_columns(
                    dm_io_manager.stored(kit.key("clean", p), version), _referenced(table, p)
                )
                for p in parents
            }
            fks = [c.name for c in table.columns if c.foreignKey]
            passed, message = check_foreign_keys(key_columns(data, fks), table, frames)
            return dg.AssetCheckResult(passed=passed, description=message)

        checks.append(_fks)
    return checks
