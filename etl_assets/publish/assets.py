"""The outbox and upload stages in Dagster: the prepared tables of a version (with the blocking
privacy check), and the upload of all of them at once."""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from etl_assets import registry
from etl_assets.anonymize.table import check_outbox_privacy, verify_outbox_privacy
from etl_assets.asset_metadata import column_schema, head_frame, table_metadata
from etl_assets.errors import UploadError, may_heal
from etl_assets.execution import stage_connections
from etl_assets.extract.assets import mark_durable
from etl_assets.extract.units import extraction_units
from etl_assets.metadata import Table
from etl_assets.publish.version import publish_version, write_version_snapshot
from etl_assets.results import (
    AnonymizeCounts,
    CleanCounts,
    PrivacyReached,
    StageResultMissing,
    TableOutcome,
    UploadCounts,
    generalization_levels,
)
from etl_assets.stages import StageKit, governance_gate
from resources.deployment import GovernanceResource, SecretsResource
from resources.io_manager import ParquetIOManager, StoredTables
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource
from resources.staged import StagedTable


def outbox_asset(kit: StageKit, table: Table) -> dg.AssetsDefinition:
    units = extraction_units(kit.model, table.name)

    @dg.asset(
        key=kit.key("outbox", table.name),
        **kit.asset_args(
            stage="outbox", connections=stage_connections(kit.model, "outbox", table.name)
        ),
        ins={"anonymized": dg.AssetIn(key=kit.key("anonymize", table.name))},
        kinds=kit.kinds("outbox", "parquet"),
        description=f"The prepared `{table.name}` of a version, as Parquet in the outbox with the"
        " version's metadata, waiting for review and upload. **Published zone** (anonymized);"
        " its quarantine and key maps are in the restricted zone.",
    )
    def _outbox(
        context: dg.AssetExecutionContext,
        outbox: OutboxResource,
        secrets: SecretsResource,
        dm_io_manager: dg.ResourceParam[ParquetIOManager],
        anonymized: Any,  # StoredTables (the whole-table path), or a StagedTable (batched)
    ) -> dg.MaterializeResult:
        version = kit.version(context)
        m = kit.module
        if isinstance(anonymized, StagedTable):  # the batched anonymize path: one table
            anonymized = {table.name: anonymized}
        paths = {name: outbox.write_table(m, version, name, df) for name, df in anonymized.items()}
        snapshot = write_version_snapshot(outbox, kit.loaded, version)
        mark_durable(kit, context, version, table.name, units, secrets, dm_io_manager)
        rows = sum(_rows(anonymized, name) for name in anonymized)
        # a preview only of data that meets its privacy models (the blocking check says so too)
        privacy = (
            check_outbox_privacy(
                outbox,
                kit.loaded,
                table,
                version,
                dm_io_manager.read(kit.key("clean", table.name), version),
            )
            if table.privacy is not None
            else None
        )
        safe = privacy is None or privacy.passed
        first = anonymized[next(iter(anonymized))]  # (a stored table is read only now)
        total = len(first)
        if isinstance(first, StagedTable):
            first = head_frame(first)  # a preview needs only the first rows
        shown = (
            table_metadata(first, total)
            if safe
            else {"dagster/column_schema": column_schema(first)}
        )
        return dg.MaterializeResult(
            metadata={
                **shown,
                "dagster/row_count": dg.MetadataValue.int(rows),
                **kit.metadata(version),
                "dm/outbox_files": dg.MetadataValue.json(paths),
                "dm/metadata_snapshot": dg.MetadataValue.path(snapshot),
                "dagster/uri": dg.MetadataValue.path(outbox.version_uri(m, version)),
                **(privacy.reached.to_metadata() if privacy else {}),
            }
        )

    return _outbox


def _rows(tables: Mapping[str, Any], name: str) -> int:
    if isinstance(tables, StoredTables):
        return tables.num_rows(name)  # from the file's footer
    return len(tables[name])


def shrink_message(
    table: str, rows: int, version: str, current: tuple[str, dict[str, int]] | None, upload
) -> str | None:
    """Why a version's row count may not replace the current one, or None when it may."""
    if current is None or current[0] == version or table not in current[1]:
        return None
    before = current[1][table]
    if rows == 0 and before > 0 and not upload.allowEmpty:
        return (
            f"{table}: 0 rows in {version} against {before:,} in the current version"
            f" {current[0]}; set upload.allowEmpty to publish an empty table"
        )
    if before > 0 and rows < before * (1 - upload.shrinkLimit):
        return (
            f"{table}: {rows:,} rows in {version} against {before:,} in the current version"
            f" {current[0]}: more than upload.shrinkLimit ({upload.shrinkLimit:.0%}) lost"
        )
    return None


def shrink_check(kit: StageKit, table: Table) -> dg.AssetChecksDefinition:
    """A blocking check that a version does not empty or shrink a published table by surprise."""
    name = table.published_names[0]

    @dg.asset_check(
        asset=kit.key("outbox", table.name),
        name="no_unexpected_shrink",
        blocking=True,
        partitions_def=kit.partitions,
        op_tags=kit.op_tags("outbox"),
        description=f"`{name}` does not become empty (unless upload.allowEmpty) nor lose more"
        f" than upload.shrinkLimit ({kit.model.upload.shrinkLimit:.0%}) of the current version's"
        " rows",
    )
    def _shrink(
        context: dg.AssetCheckExecutionContext, outbox: OutboxResource, postgres: PostgresResource
    ) -> dg.AssetCheckResult:
        version = kit.version(context)
        rows = outbox.table_rows(kit.module, version, name)
        with postgres.connect(autocommit=True) as conn:
            current = registry.current_row_counts(conn, kit.module)
        problem = shrink_message(name, rows, version, current, kit.model.upload)
        before = current[1].get(name) if current else None
        return dg.AssetCheckResult(
            passed=problem is None,
            description=problem
            or f"{rows:,} rows"
            + (
                f" against {before:,} in the current version {current[0]}"
                if before is not None
                else ""
            ),
            metadata={"rows": rows, **({"current_rows": before} if before is not None else {})},
        )

    return _shrink


def outbox_checks(kit: StageKit, table: Table) -> list[dg.AssetChecksDefinition]:
    """Blocking checks on the outbox: no surprising shrink, and the table's privacy models."""
    if table.privacy is None:
        return [shrink_check(kit, table)]

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
        log = context.log.info if passed else context.log.error
        log(f"{table.name}: privacy models: {message}")  # counts and levels, never values
        return dg.AssetCheckResult(passed=passed, description=message, metadata=metrics)

    return [shrink_check(kit, table), _privacy]


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey, version: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[version]), limit=1
    ).records
    return records[0] if records else None


def recorded_outcomes(
    instance: dg.DagsterInstance, kit: StageKit, version: str
) -> dict[str, TableOutcome]:
    """What the clean and anonymize stages and the outbox check recorded for each table of a
    version (counts per rule, generalization levels, the values the privacy models reached):
    what the version's Croissant metadata reports. A table whose records are missing is left
    out."""
    out = {}
    for table in kit.model.tables:
        cleaned = _latest(instance, kit.key("clean", table.name), version)
        anonymized = _latest(instance, kit.key("anonymize", table.name), version)
        prepared = _latest(instance, kit.key("outbox", table.name), version)
        if anonymized is None:
            continue
        md = anonymized.asset_materialization.metadata
        try:
            counts = AnonymizeCounts.from_metadata(md)
            clean = (
                CleanCounts.from_metadata(cleaned.asset_materialization.metadata)
                if cleaned is not None
                else None
            )
            reached = (
                PrivacyReached.from_metadata(prepared.asset_materialization.metadata)
                if table.privacy is not None and prepared is not None
                else PrivacyReached()
            )
        except StageResultMissing:
            continue
        out[table.name] = TableOutcome(
            counts=counts,
            cleaned=clean,
            levels=generalization_levels(md),
            privacy=reached,
            run_id=anonymized.run_id,
        )
    return out


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
            kinds=kit.kinds("upload", model.upload.sink.type if model.upload.sink else "python"),
            description=f"`{t.name}` published: {', '.join(t.published_names)}",
        )
        for t in model.tables
    ]

    @dg.multi_asset(
        specs=specs,
        name=f"{kit.module}__upload",
        partitions_def=kit.partitions,
        op_tags=args["op_tags"],
        # only network and server errors are retried: a retry after a COMMIT completes the
        # version without loading it again (publish.version.committed_before)
        retry_policy=kit.retry,
        can_subset=False,
        description=f"Publish a version of {kit.module}: every table in one transaction, then"
        " the version's Croissant metadata. Needs an approval unless the module sets autoUpload.",
    )
    def _upload(
        context: dg.AssetExecutionContext,
        outbox: OutboxResource,
        postgres: PostgresResource,
        secrets: SecretsResource,
        governance: GovernanceResource,
    ):
        version = kit.version(context)
        governance_gate(kit, context, version, governance, postgres)
        mask = kit.masker(secrets)
        try:
            report = publish_version(
                kit.loaded,
                version,
                outbox=outbox,
                postgres=postgres,
                secrets=secrets,
                run_id=context.run.run_id,
                log=context.log,
                outcomes=recorded_outcomes(context.instance, kit, version),
            )
        except UploadError as exc:
            message = mask(str(exc))
            if exc.restricted_detail:
                uri = outbox.write_restricted_text(
                    kit.module, version, "upload.stderr.txt", mask(exc.restricted_detail)
                )
                message += f"; it is kept in the restricted zone: {uri}"
            raise dg.Failure(description=message, allow_retries=False) from None
        except Exception as exc:
            heals = may_heal(exc)
            raise dg.Failure(
                description=f"upload failed with {type(exc).__name__}"
                + (" (a network or server error)" if heals else "")
                + f": {mask(str(exc).strip())}",
                allow_retries=heals,
            ) from None
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
                    # which version consumers read now: this one, or a higher one published before
                    "dm/served_version": report.current_version or "",
                    "dm/is_current": dg.MetadataValue.bool(report.current_version == version),
                    **(
                        {"dm/served_as": ", ".join(report.served.get(n, "") for n in names)}
                        if report.served
                        else {}
                    ),
                    "dm/croissant": dg.MetadataValue.path(str(report.croissant_path)),
                    "dm/sink": report.sink,
                    **{
                        f"dm/{phase}_seconds": dg.MetadataValue.float(round(s, 4))
                        for phase, s in report.seconds.items()
                    },
                },
            )

    return _upload
