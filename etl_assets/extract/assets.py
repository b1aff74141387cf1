"""The extract stage in Dagster: one asset per collection entry (and per shard)."""

from pathlib import Path

import dagster as dg

from etl_assets.asset_metadata import TableProfile, staged_metadata
from etl_assets.errors import ExtractionError
from etl_assets.execution import entry_connections
from etl_assets.extract.context import ExtractContext
from etl_assets.extract.entry import extract_entry_batches, outbox_durable
from etl_assets.extract.sql.plan import range_label
from etl_assets.extract.units import ExtractionUnit
from etl_assets.stages import StageKit, governance_gate, restricted_errors
from resources.deployment import GovernanceResource, PrivacyResource, SecretsResource
from resources.io_manager import IO_MANAGER_KEY, ParquetIOManager
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource
from resources.staged import StagedTable

CONNECTOR_KINDS = {
    "file": "file",
    "script": "python",
    "postgres": "postgres",
    "sql": "sql",  # replaced by the connection's database (below)
    "rest": "api",
    "sftp": "sftp",
    "kafka": "kafka",
    "s3": "s3",
}


def step_context(
    kit: StageKit,
    context: dg.AssetExecutionContext,
    version: str,
    secrets: SecretsResource,
    storage: ParquetIOManager,
    shard: str | None = None,
    partition: int | None = None,
) -> ExtractContext:
    """The connector's view of a step: module, version, secrets, log and step storage."""
    return ExtractContext(
        module=kit.model,
        folder=kit.loaded.folder,
        version=version,
        secrets=secrets,
        storage_root=Path(storage.base_dir),
        log=context.log,
        shard=shard,
        partition=partition,
        run_id=context.run.run_id,
    )


# a sql source's kind is its connection's database (Dagster shows their icons)
SQL_KINDS = {"mysql": "mysql", "postgres": "postgres", "mssql": "sqlserver"}


def connector_kind(kit: StageKit, unit: ExtractionUnit) -> str:
    """The asset's kind: the connector's, or for a sql source the database it reads."""
    extract = unit.entry.extract
    if extract.type == "sql":
        types = {c.name: c.type for c in kit.model.connections}
        return SQL_KINDS.get(types.get(extract.connection, ""), "sql")
    return CONNECTOR_KINDS[extract.type]


def extract_asset(kit: StageKit, unit: ExtractionUnit, code_version: str) -> dg.AssetsDefinition:
    entry = unit.entry
    shard_note = f", shard {unit.shard}" if unit.shard else ""
    partition = getattr(entry.extract, "partition", None)
    if partition is not None and unit.partition is not None:
        shard_note += f", {range_label(partition, unit.partition)}"

    @dg.asset(
        key=kit.key("extract", unit.name),
        **kit.asset_args(code_version, stage="extract", connections=entry_connections(unit.entry)),
        kinds=kit.kinds("extract", connector_kind(kit, unit), "parquet"),
        io_manager_key=IO_MANAGER_KEY,
        description=f"Records of table `{entry.table}` from source `{entry.source}`"
        f" ({entry.extract.type}{shard_note}, priority {entry.priority}). **Restricted zone**:"
        " raw records; Dagster shows counts, types and a profile, never values.",
    )
    def _extract(
        context: dg.AssetExecutionContext,
        secrets: SecretsResource,
        outbox: OutboxResource,
        privacy: PrivacyResource,
        governance: GovernanceResource,
        postgres: PostgresResource,
        dm_io_manager: dg.ResourceParam[ParquetIOManager],
    ) -> dg.Output[StagedTable]:
        version = kit.version(context)
        governance_gate(kit, context, version, governance, postgres)
        ctx = step_context(
            kit, context, version, secrets, dm_io_manager, unit.shard, unit.partition
        )
        where = f"{entry.table}/{entry.source}"
        with restricted_errors(outbox, kit, version, f"extract {unit.name}", secrets):
            try:
                # batch by batch into step storage: the records are never all in memory
                with dm_io_manager.stage(context.asset_key, version) as writer:
                    batches = extract_entry_batches(
                        entry, kit.loaded.folder, ctx, dm_io_manager.batch_rows
                    )
                    profile = TableProfile()
                    staged = writer.write_all(profile.watch(batches)).close()
            except ExtractionError as exc:
                # bad input is not transient: fail at once; keep retries for outages
                mask = kit.masker(secrets)
                message = mask(f"{where}: {exc}")
                if exc.restricted_detail:  # a script's stderr: secrets masked even there
                    name = f"extract {unit.name}.stderr.txt"
                    uri = outbox.write_restricted_text(
                        kit.module, version, name, mask(exc.restricted_detail)
                    )
                    message += f"; it is kept in the restricted zone: {uri}"
                allow = exc.may_retry(context.retry_number)
                raise dg.Failure(description=message, allow_retries=allow) from None
            except (PermissionError, LookupError) as exc:
                # refused credentials, a missing bucket, a wrong setting: retrying cannot help
                message = kit.masker(secrets)(f"{where}: {exc}")
                raise dg.Failure(description=message, allow_retries=False) from None
        context.log.info(f"{where}{shard_note}: {staged.num_rows:,} records extracted")
        return dg.Output(
            staged,
            metadata={
                **staged_metadata(staged, profile, privacy.restricted_previews),
                **kit.metadata(version),
                "dm/source": entry.source,
                "dm/connector": entry.extract.type,
                **({"dm/shard": unit.shard} if unit.shard else {}),
                **({"dm/partition": unit.partition} if unit.partition is not None else {}),
            },
        )

    return _extract


def mark_durable(
    kit: StageKit,
    context: dg.AssetExecutionContext,
    version: str,
    table: str,
    units: list[ExtractionUnit],
    secrets: SecretsResource,
    storage: ParquetIOManager,
) -> None:
    """The outbox of `table` is durable: let its connectors commit (e.g. Kafka offsets)."""
    for unit in units:
        if unit.entry.table == table:
            ctx = step_context(kit, context, version, secrets, storage, unit.shard, unit.partition)
            outbox_durable(unit.entry, kit.loaded.folder, ctx)
