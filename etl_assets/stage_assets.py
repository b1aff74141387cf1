"""The asset definitions of each stage, built per module by `etl_assets.factory`.

Compute lives in plain modules (`extract`, `cleaning`, `anonymization`, `publishing`); this file
only wires them into Dagster: keys, partitions, inputs, metadata and checks.
"""

import dagster as dg
import pandas as pd

from etl_assets import factory as f
from etl_assets.anonymization import anonymize_for_module, drop_orphans, published_tables
from etl_assets.anonymize import HierarchyError, PrivacyModelUnsatisfiable, SpecError
from etl_assets.cleaning import clean_table
from etl_assets.errors import ExtractionError, UploadError
from etl_assets.extract import extract_entry, outbox_durable
from etl_assets.loader import LoadedModule
from etl_assets.model import Table
from etl_assets.presentation import column_lineage, table_metadata
from etl_assets.rules.engine import check_foreign_keys, check_unique_key
from resources.io_manager import ParquetIOManager
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource


class ExtractContext:
    """What a connector may need besides its entry: resources and the script environment."""

    def __init__(
        self,
        context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
        loaded: LoadedModule,
        shard: str | None = None,
    ):
        self.log = context.log
        self.version = context.partition_key
        self.module = loaded.model
        self.folder = loaded.folder
        self.shard = shard
        self.script_env = {"DM_MODULE": loaded.name, "DM_VERSION": context.partition_key}

    def connection(self, name: str):
        """The named connection of the module, with its secrets read from the environment."""
        from etl_assets.connections import resolve_connection

        return resolve_connection(self.module, name)


def shared(
    loaded: LoadedModule,
    partitions: dg.PartitionsDefinition,
    retry: dg.RetryPolicy | None,
    owners: list[str],
    tags: dict[str, str],
    code_version: str | None = None,
) -> dict:
    """What every stage asset of a module has in common: group, partitions, code version
    (the metadata hash unless given), retries, owners and tags."""
    return {
        "group_name": loaded.name,
        "partitions_def": partitions,
        "code_version": code_version or loaded.code_version,
        "retry_policy": retry,
        "owners": owners,
        "tags": tags,
    }


def extract_asset(
    loaded: LoadedModule,
    unit: f.ExtractionUnit,
    partitions: dg.PartitionsDefinition,
    retry: dg.RetryPolicy | None,
    owners: list[str],
    tags: dict[str, str],
    code_version: str,
) -> dg.AssetsDefinition:
    m = loaded.name
    entry = unit.entry
    kind = f.CONNECTOR_KINDS[entry.extract.type]
    shard_note = f", shard {unit.shard}" if unit.shard else ""

    @dg.asset(
        key=f.key(m, "extract", unit.name),
        **shared(loaded, partitions, retry, owners, tags, code_version),
        kinds={kind, "pandas"},
        io_manager_key=f.IO_MANAGER_KEY,
        description=f"Records of table `{entry.table}` from source `{entry.source}`"
        f" ({entry.extract.type}{shard_note}, priority {entry.priority}).",
    )
    def _extract(context: dg.AssetExecutionContext) -> dg.Output[pd.DataFrame]:
        version = context.partition_key
        try:
            df = extract_entry(entry, loaded.folder, ExtractContext(context, loaded, unit.shard))
        except ExtractionError as exc:
            # bad input is not transient: fail at once with the message, keep retries for outages
            raise dg.Failure(
                description=f"{entry.table}/{entry.source}: {exc}", allow_retries=exc.retryable
            ) from exc
        except (PermissionError, LookupError, ValueError) as exc:
            # refused credentials, a missing bucket, a wrong setting: retrying cannot help
            raise dg.Failure(
                description=f"{entry.table}/{entry.source}: {exc}", allow_retries=False
            ) from exc
        context.log.info(f"{entry.table}/{entry.source}{shard_note}: {len(df):,} records extracted")
        return dg.Output(
            df,
            metadata={
                **table_metadata(df),
                **f.common_metadata(loaded, version),
                "dm/source": entry.source,
                "dm/connector": entry.extract.type,
                **({"dm/shard": unit.shard} if unit.shard else {}),
            },
        )

    return _extract


def clean_asset(
    loaded: LoadedModule,
    table: Table,
    partitions: dg.PartitionsDefinition,
    retry: dg.RetryPolicy | None,
    owners: list[str],
    tags: dict[str, str],
) -> dg.AssetsDefinition:
    m = loaded.name
    model = loaded.model
    units = f.extraction_units(model, table.name)
    ins = {f"src_{i}": dg.AssetIn(key=f.key(m, "extract", u.name)) for i, u in enumerate(units)}
    parents = sorted({c.foreignKey.table for c in table.columns if c.foreignKey})
    ins.update({f"parent_{p}": dg.AssetIn(key=f.key(m, "clean", p)) for p in parents})
    upstream_cols = {f.key(m, "extract", u.name): [c.name for c in table.columns] for u in units}

    @dg.asset(
        key=f.key(m, "clean", table.name),
        **shared(loaded, partitions, retry, owners, tags),
        ins=ins,
        kinds={"pandas"},
        io_manager_key=f.IO_MANAGER_KEY,
        description=f"Table `{table.name}`: sources merged, typed, field rules applied"
        " (empty values, ranges, primary and foreign keys, duplicates). Rejected records go to"
        " the quarantine with their reason.",
    )
    def _clean(context: dg.AssetExecutionContext, outbox: OutboxResource, **inputs: pd.DataFrame):
        version = context.partition_key
        frames = [inputs[f"src_{i}"] for i in range(len(units))]
        parent_frames = {p: inputs[f"parent_{p}"] for p in parents}
        result = clean_table(frames, table, model, version=version, parents=parent_frames)
        qpath = outbox.write_quarantine(m, version, table.name, result.quarantine)
        if result.key_map is not None and len(result.key_map):
            outbox.write_key_map(m, version, table.name, result.key_map)
        for col in result.missing_columns:
            context.log.warning(f"{table.name}: no source provides column {col!r}; it is empty")
        if result.dropped_columns:
            context.log.info(
                f"{table.name}: strict schema dropped undeclared columns"
                f" {', '.join(result.dropped_columns)}"
            )
        metadata = {
            **table_metadata(result.data),
            **f.common_metadata(loaded, version),
            **{f"dm/{k}": dg.MetadataValue.int(int(v)) for k, v in sorted(result.counts.items())},
            "dm/quarantine_path": dg.MetadataValue.path(qpath),
            "dagster/column_lineage": column_lineage(list(result.data.columns), upstream_cols),
        }
        if len(result.quarantine):
            reasons = (
                result.quarantine.groupby(["action", "rule", "reason"], dropna=False)
                .size()
                .reset_index(name="records")
            )
            metadata["dm/quarantine_summary"] = dg.MetadataValue.md(
                "\n".join(
                    ["| action | rule | reason | records |", "|---|---|---|---|"]
                    + [
                        f"| {r.action} | {r.rule} | {r.reason} | {r.records} |"
                        for r in reasons.itertuples()
                    ]
                )
            )
        return dg.Output(result.data, metadata=metadata)

    return _clean


def clean_checks(
    loaded: LoadedModule, table: Table, partitions: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    """Blocking checks on the clean output: conservation, key uniqueness, reference integrity."""
    m = loaded.name
    target = f.key(m, "clean", table.name)
    checks = []

    @dg.asset_check(
        asset=target,
        name="rows_conserved",
        blocking=True,
        partitions_def=partitions,
        description="rows extracted = rows out + rows rejected + duplicates merged",
    )
    def _conservation(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=target, asset_partitions=[context.partition_key]),
            limit=1,
        ).records
        md = records[0].asset_materialization.metadata if records else {}

        def n(name: str) -> int:
            v = md.get(f"dm/{name}")
            return int(v.value) if v is not None else 0

        extracted, out = n("rows_extracted"), n("rows_out")
        accounted = out + n("rejected_total") + n("duplicates")
        return dg.AssetCheckResult(
            passed=extracted == accounted,
            metadata={"rows_extracted": extracted, "accounted": accounted},
            description=f"{extracted} extracted, {accounted} accounted for",
        )

    checks.append(_conservation)

    if table.primaryKey:

        @dg.asset_check(
            asset=target,
            name="primary_key_unique",
            blocking=True,
            partitions_def=partitions,
            description=f"({', '.join(table.primaryKey)}) is unique in the clean output",
        )
        def _unique(
            context: dg.AssetCheckExecutionContext, data: pd.DataFrame
        ) -> dg.AssetCheckResult:
            passed, message = check_unique_key(data, table)
            return dg.AssetCheckResult(passed=passed, description=message)

        checks.append(_unique)

    parents = sorted({c.foreignKey.table for c in table.columns if c.foreignKey})
    if parents:

        @dg.asset_check(
            asset=target,
            name="foreign_keys_resolve",
            blocking=True,
            partitions_def=partitions,
            additional_deps=[f.key(m, "clean", p) for p in parents],
            description="every non-null foreign key value exists in its referenced table",
        )
        def _fks(
            context: dg.AssetCheckExecutionContext,
            data: pd.DataFrame,
            dm_io_manager: dg.ResourceParam[ParquetIOManager],
        ):
            pk = context.partition_key
            frames = {p: dm_io_manager.read(f.key(m, "clean", p), pk) for p in parents}
            passed, message = check_foreign_keys(data, table, frames)
            return dg.AssetCheckResult(passed=passed, description=message)

        checks.append(_fks)
    return checks


def anonymize_asset(
    loaded: LoadedModule,
    table: Table,
    partitions: dg.PartitionsDefinition,
    retry: dg.RetryPolicy | None,
    owners: list[str],
    tags: dict[str, str],
) -> dg.AssetsDefinition:
    m = loaded.name
    source_key = f.key(m, "clean", table.name)
    # parents published as one table: records whose parent was suppressed must go too
    fk_parents = sorted(
        {
            c.foreignKey.table
            for c in table.columns
            if c.foreignKey and len(published_tables(loaded.model.table(c.foreignKey.table))) == 1
        }
    )
    ins = {"clean": dg.AssetIn(key=source_key)}
    ins.update({f"parent_{p}": dg.AssetIn(key=f.key(m, "anonymize", p)) for p in fk_parents})

    @dg.asset(
        key=f.key(m, "anonymize", table.name),
        **shared(loaded, partitions, retry, owners, tags),
        ins=ins,
        kinds={"pandas"},
        io_manager_key=f.IO_MANAGER_KEY,
        description=f"Table `{table.name}` anonymized as its metadata declares"
        " (generalization, suppression, anatomization, permutation, perturbation,"
        " pseudonymization) and checked against its privacy models.",
    )
    def _anonymize(
        context: dg.AssetExecutionContext,
        outbox: OutboxResource,
        clean: pd.DataFrame,
        **parents: dict[str, pd.DataFrame],
    ):
        version = context.partition_key
        try:
            result = anonymize_for_module(clean, table, loaded, version)
        except (PrivacyModelUnsatisfiable, SpecError, HierarchyError) as exc:
            # no retry can fix it: the data cannot meet the declared model, or the spec is wrong
            raise dg.Failure(description=f"{table.name}: {exc}", allow_retries=False) from exc
        parent_tables = {p: parents[f"parent_{p}"][p] for p in fk_parents}
        tables, orphans = drop_orphans(result.tables, table, parent_tables, version)
        outbox.write_quarantine(m, version, f"{table.name}__anonymize", orphans)
        first = next(iter(tables.values()))
        metadata = {
            **table_metadata(first),
            "dagster/row_count": dg.MetadataValue.int(sum(len(d) for d in tables.values())),
            **f.common_metadata(loaded, version),
            **{f"dm/{k}": v for k, v in result.metrics.items()},
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


def outbox_asset(
    loaded: LoadedModule,
    table: Table,
    partitions: dg.PartitionsDefinition,
    retry: dg.RetryPolicy | None,
    owners: list[str],
    tags: dict[str, str],
) -> dg.AssetsDefinition:
    m = loaded.name

    @dg.asset(
        key=f.key(m, "outbox", table.name),
        **shared(loaded, partitions, retry, owners, tags),
        ins={"anonymized": dg.AssetIn(key=f.key(m, "anonymize", table.name))},
        kinds={"parquet"},
        description=f"The prepared `{table.name}` of a version, as Parquet in the outbox with the"
        " version's metadata, waiting for review and upload.",
    )
    def _outbox(
        context: dg.AssetExecutionContext,
        outbox: OutboxResource,
        anonymized: dict[str, pd.DataFrame],
    ) -> dg.MaterializeResult:
        from etl_assets.publishing import write_version_snapshot

        version = context.partition_key
        paths = {name: outbox.write_table(m, version, name, df) for name, df in anonymized.items()}
        snapshot = write_version_snapshot(outbox, loaded, version)
        for unit in f.extraction_units(loaded.model, table.name):
            outbox_durable(unit.entry, loaded.folder, ExtractContext(context, loaded, unit.shard))
        first = next(iter(anonymized.values()))
        return dg.MaterializeResult(
            metadata={
                **table_metadata(first),
                "dagster/row_count": dg.MetadataValue.int(sum(len(d) for d in anonymized.values())),
                **f.common_metadata(loaded, version),
                "dm/outbox_files": dg.MetadataValue.json(paths),
                "dm/metadata_snapshot": dg.MetadataValue.path(snapshot),
                "dagster/uri": dg.MetadataValue.path(outbox.version_uri(m, version)),
            }
        )

    return _outbox


def outbox_checks(
    loaded: LoadedModule, table: Table, partitions: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    """A blocking check that the outbox data satisfies the table's privacy models."""
    if table.privacy is None:
        return []
    m = loaded.name
    target = f.key(m, "outbox", table.name)

    @dg.asset_check(
        asset=target,
        name="privacy_models_hold",
        blocking=True,
        partitions_def=partitions,
        description="the outbox data satisfies "
        + ", ".join(pm.type for pm in table.privacy.models),
    )
    def _privacy(
        context: dg.AssetCheckExecutionContext,
        outbox: OutboxResource,
        dm_io_manager: dg.ResourceParam[ParquetIOManager],
    ):
        from etl_assets.anonymization import verify_outbox_privacy

        version = context.partition_key
        clean = dm_io_manager.read(f.key(m, "clean", table.name), version)
        passed, message, metrics = verify_outbox_privacy(
            outbox, loaded, table, version, reference=clean
        )
        return dg.AssetCheckResult(passed=passed, description=message, metadata=metrics)

    return [_privacy]


def upload_asset(
    loaded: LoadedModule,
    partitions: dg.PartitionsDefinition,
    owners: list[str],
    tags: dict[str, str],
) -> dg.AssetsDefinition:
    m = loaded.name
    model = loaded.model
    specs = [
        dg.AssetSpec(
            key=f.key(m, "upload", t.name),
            group_name=m,
            deps=[f.key(m, "outbox", t.name)],
            code_version=loaded.code_version,
            owners=owners,
            tags=tags,
            kinds={model.upload.sink.type if model.upload.sink else "python"},
            description=f"`{t.name}` published: {', '.join(published_tables(t))}",
        )
        for t in model.tables
    ]

    @dg.multi_asset(
        specs=specs,
        name=f"{m}__upload",
        partitions_def=partitions,
        can_subset=False,
        description=f"Publish a version of {m}: every table in one transaction, then the"
        " version's Croissant metadata. Needs an approval unless the module sets autoUpload.",
    )
    def _upload(
        context: dg.AssetExecutionContext, outbox: OutboxResource, postgres: PostgresResource
    ):
        from etl_assets.publishing import publish_version

        version = context.partition_key
        try:
            report = publish_version(
                loaded,
                version,
                outbox=outbox,
                postgres=postgres,
                run_id=context.run_id,
                log=context.log,
            )
        except UploadError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        for t in model.tables:
            names = published_tables(t)
            yield dg.MaterializeResult(
                asset_key=f.key(m, "upload", t.name),
                metadata={
                    **f.common_metadata(loaded, version),
                    # the records of the table (for anatomization: its QIT; the ST has groups)
                    "dagster/row_count": dg.MetadataValue.int(report.rows.get(names[0], 0)),
                    "dm/inserted_rows": dg.MetadataValue.int(
                        sum(report.inserted.get(n, 0) for n in names)
                    ),
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
