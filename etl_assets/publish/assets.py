"""The outbox and upload stages in Dagster: the prepared tables of a version (with the blocking
privacy check), and the upload of all of them at once."""

import dagster as dg
import pandas as pd

from etl_assets.anonymize.table import verify_outbox_privacy
from etl_assets.asset_metadata import table_metadata
from etl_assets.errors import UploadError
from etl_assets.execution import stage_connections
from etl_assets.extract.assets import mark_durable
from etl_assets.extract.units import extraction_units
from etl_assets.metadata import Table
from etl_assets.publish.version import publish_version, write_version_snapshot
from etl_assets.results import UploadCounts
from etl_assets.stages import StageKit
from resources.deployment import SecretsResource
from resources.io_manager import ParquetIOManager
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource


def outbox_asset(kit: StageKit, table: Table) -> dg.AssetsDefinition:
    units = extraction_units(kit.model, table.name)

    @dg.asset(
        key=kit.key("outbox", table.name),
        **kit.asset_args(
            stage="outbox", connections=stage_connections(kit.model, "outbox", table.name)
        ),
        ins={"anonymized": dg.AssetIn(key=kit.key("anonymize", table.name))},
        kinds={"parquet"},
        description=f"The prepared `{table.name}` of a version, as Parquet in the outbox with the"
        " version's metadata, waiting for review and upload.",
    )
    def _outbox(
        context: dg.AssetExecutionContext,
        outbox: OutboxResource,
        secrets: SecretsResource,
        dm_io_manager: dg.ResourceParam[ParquetIOManager],
        anonymized: dict[str, pd.DataFrame],
    ) -> dg.MaterializeResult:
        version = kit.version(context)
        m = kit.module
        paths = {name: outbox.write_table(m, version, name, df) for name, df in anonymized.items()}
        snapshot = write_version_snapshot(outbox, kit.loaded, version)
        mark_durable(kit, context, version, table.name, units, secrets, dm_io_manager)
        first = next(iter(anonymized.values()))
        return dg.MaterializeResult(
            metadata={
                **table_metadata(first),
                "dagster/row_count": dg.MetadataValue.int(sum(len(d) for d in anonymized.values())),
                **kit.metadata(version),
                "dm/outbox_files": dg.MetadataValue.json(paths),
                "dm/metadata_snapshot": dg.MetadataValue.path(snapshot),
                "dagster/uri": dg.MetadataValue.path(outbox.version_uri(m, version)),
            }
        )

    return _outbox


def outbox_checks(kit: StageKit, table: Table) -> list[dg.AssetChecksDefinition]:
    """A blocking check that the outbox data satisfies the table's privacy models."""
    if table.privacy is None:
        return []

    @dg.asset_check(
        asset=kit.key("outbox", table.name),
        name="privacy_models_hold",
        blocking=True,
        partitions_def=kit.partitions,
        op_tags=kit.op_tags("outbox"),
        description="the outbox data satisfies "
        + ", ".join(pm.type for pm in table.privacy.models),
    )
    def _privacy(
        context: dg.AssetCheckExecutionContext,
        outbox: OutboxResource,
        dm_io_manager: dg.ResourceParam[ParquetIOManager],
    ):
        version = kit.version(context)
        clean = dm_io_manager.read(kit.key("clean", table.name), version)
        passed, message, metrics = verify_outbox_privacy(
            outbox, kit.loaded, table, version, reference=clean
        )
        return dg.AssetCheckResult(passed=passed, description=message, metadata=metrics)

    return [_privacy]


def upload_asset(kit: StageKit) -> dg.AssetsDefinition:
    model = kit.model
    args = kit.asset_args(
        retry=False, stage="upload", connections=stage_connections(model, "upload")
    )
    specs = [
        dg.AssetSpec(
            key=kit.key("upload", t.name),
            group_name=args["group_name"],
            deps=[kit.key("outbox", t.name)],
            code_version=args["code_version"],
            owners=args["owners"],
            tags=args["tags"],
            kinds={model.upload.sink.type if model.upload.sink else "python"},
            description=f"`{t.name}` published: {', '.join(t.published_names)}",
        )
        for t in model.tables
    ]

    @dg.multi_asset(
        specs=specs,
        name=f"{kit.module}__upload",
        partitions_def=kit.partitions,
        op_tags=args["op_tags"],
        can_subset=False,
        description=f"Publish a version of {kit.module}: every table in one transaction, then"
        " the version's Croissant metadata. Needs an approval unless the module sets autoUpload.",
    )
    def _upload(
        context: dg.AssetExecutionContext,
        outbox: OutboxResource,
        postgres: PostgresResource,
        secrets: SecretsResource,
    ):
        version = kit.version(context)
        try:
            report = publish_version(
                kit.loaded,
                version,
                outbox=outbox,
                postgres=postgres,
                secrets=secrets,
                run_id=context.run_id,
                log=context.log,
            )
        except UploadError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        for t in model.tables:
            names = t.published_names
            counts = UploadCounts(
                # the records of the table (for anatomization: its QIT; the ST has groups)
                published_rows=report.rows.get(names[0], 0),
                inserted_rows=sum(report.inserted.get(n, 0) for n in names),
            )
            yield dg.MaterializeResult(
                asset_key=kit.key("upload", t.name),
                metadata={
                    **kit.metadata(version),
                    "dagster/row_count": dg.MetadataValue.int(counts.published_rows),
                    **counts.to_metadata(),
                    **{
                        f"dm/rows_{n}": dg.MetadataValue.int(report.rows.get(n, 0))
                        for n in names
                        if len(names) > 1
                    },
                    "dm/published_as": ", ".join(report.locations.get(n, "") for n in names),
                    "dm/croissant": dg.MetadataValue.path(str(report.croissant_path)),
                    "dm/sink": report.sink,
                },
            )

    return _upload
