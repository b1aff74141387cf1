"""What every stage asset of a module shares: keys, the partitions, code version, retries,
owners, tags, the step's op tags (connections, pod resources: `etl_assets.execution`) and the
metadata recorded on each materialization.

Keys are `<module>/<stage>/<name>`: `extract/<table>__<source>` per collection entry (and shard),
then `clean`, `anonymize`, `outbox` and `upload` per table.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg

from etl_assets.connections import secret_names
from etl_assets.errors import MetadataError, may_heal
from etl_assets.execution import step_tags
from etl_assets.governance import gate
from etl_assets.metadata import SEMVER, DataModule
from etl_assets.metadata.loader import LoadedModule
from resources.deployment import DeploymentError, GovernanceResource, SecretsResource
from resources.masking import Masker
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource

STAGES = ("extract", "clean", "anonymize", "outbox", "upload")


def asset_key(module: str, stage: str, name: str) -> dg.AssetKey:
    return dg.AssetKey([module, stage, name])


def partitions_def_name(module: str) -> str:
    return f"{module}_versions"


def retry_policy(model: DataModule) -> dg.RetryPolicy | None:
    """Step retries from the module's `retry` metadata (exponential backoff with jitter)."""
    r = model.retry
    if r.maxRetries == 0:
        return None
    return dg.RetryPolicy(
        max_retries=r.maxRetries,
        delay=r.delaySeconds,
        backoff=dg.Backoff.EXPONENTIAL if r.backoff == "exponential" else dg.Backoff.LINEAR,
        jitter={"none": None, "full": dg.Jitter.FULL, "plus_minus": dg.Jitter.PLUS_MINUS}[r.jitter],
    )


class InvalidVersion(dg.Failure):
    """The run's partition is not a version of the module: no stage can do anything with it."""


@dataclass(frozen=True)
class StageKit:
    """One module's shared asset settings, handed to every stage's asset builder."""

    loaded: LoadedModule
    partitions: dg.DynamicPartitionsDefinition
    retry: dg.RetryPolicy | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # the deployment's executor for modules that do not choose one (DM_EXECUTOR)
    default_executor: str = "auto"

    @classmethod
    def for_module(cls, loaded: LoadedModule, default_executor: str = "auto") -> StageKit:
        return cls(
            loaded=loaded,
            partitions=dg.DynamicPartitionsDefinition(name=partitions_def_name(loaded.name)),
            retry=retry_policy(loaded.model),
            tags={"dm/status": loaded.model.status},
            default_executor=default_executor,
        )

    @property
    def module(self) -> str:
        return self.loaded.name

    @property
    def model(self) -> DataModule:
        return self.loaded.model

    def key(self, stage: str, name: str) -> dg.AssetKey:
        return asset_key(self.module, stage, name)

    def asset_args(
        self,
        code_version: str | None = None,
        retry: bool = True,
        *,
        stage: str,
        connections: Iterable[str] = (),
    ) -> dict:
        """Group, partitions, code version (the metadata hash unless given), retries, owners,
        tags, and the op tags of a `stage` step that talks to `connections`: what every stage
        asset of the module has in common."""
        return {
            "group_name": self.module,
            "partitions_def": self.partitions,
            "code_version": code_version or self.loaded.code_version,
            "retry_policy": self.retry if retry else None,
            "owners": list(self.model.owners),
            "tags": dict(self.tags),
            "op_tags": self.op_tags(stage, connections),
        }

    def kinds(self, stage: str, *tools: str) -> set[str]:
        """A stage asset's Dagster kinds: its stage, which the lineage graph shows as a tag on
        the asset's box beside the table name (and the catalog filters by), and its tools."""
        return {stage, *tools}

    def op_tags(self, stage: str, connections: Iterable[str] = ()) -> dict:
        """The op tags of a `stage` step (an asset or a check): its connections, its pod's labels
        and resources (see `etl_assets.execution`)."""
        return step_tags(self.model, stage, connections)

    def version(self, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> str:
        """The run's version; a partition key that is not MAJOR.MINOR.PATCH fails at once."""
        key = context.partition_key
        if not SEMVER.match(key):
            raise InvalidVersion(
                description=f"{self.module}: partition {key!r} is not a MAJOR.MINOR.PATCH version;"
                " add versions with `dmetl run` or the next patch after the latest",
                allow_retries=False,
            )
        return key

    def masker(self, secrets: SecretsResource | None) -> Masker:
        """Masks the secret values this module's runs use (see `connections.secret_names`)."""
        return secrets.masker(secret_names(self.model)) if secrets is not None else Masker()

    def metadata(self, version: str) -> dict[str, object]:
        """Recorded on every materialization: which module, version and metadata made it."""
        return {
            "dm/module": self.module,
            "dm/version": version,
            "dm/metadata_hash": self.loaded.hash,
        }


@contextmanager
def restricted_errors(
    outbox: OutboxResource,
    kit: StageKit,
    version: str,
    step: str,
    secrets: SecretsResource | None = None,
) -> Iterator[None]:
    """Errors of a step that handles restricted records. The text of an unexpected exception
    may quote a value (a parser's message, a library's repr), so the event log gets only its
    type and where the full text is kept: the restricted zone, for data managers. Secret
    values the run uses are masked in both."""
    mask = kit.masker(secrets)
    try:
        yield
    except dg.Failure as failure:
        if failure.description:
            failure.description = mask(failure.description)
        raise
    except (MetadataError, DeploymentError) as exc:  # ours, naming a setting, never a record
        raise dg.Failure(description=mask(f"{step}: {exc}"), allow_retries=False) from None
    except Exception as exc:  # not ours: a library's message is not known to be free of values
        text = mask("".join(traceback.format_exception(exc)))
        uri = outbox.write_restricted_text(kit.module, version, f"{step}.error.txt", text)
        heals = may_heal(exc)  # a network or server error is retried; anything else is not
        raise dg.Failure(
            description=f"{step} failed with {type(exc).__name__}"
            + (" (a network or server error)" if heals else "")
            + "; its message may quote restricted values, so it is kept in the restricted"
            f" zone: {uri}",
            allow_retries=heals,
        ) from None


def governance_gate(
    kit: StageKit,
    context: dg.AssetExecutionContext,
    version: str,
    governance: GovernanceResource,
    postgres: PostgresResource,
) -> None:
    """The first steps of a run call this: with governance enabled, a module whose connections
    lack a grant for its owners, or whose scripts are unreleased or modified, fails here (not
    retried), with every reason named; otherwise nothing happens (and nothing is read)."""
    if not governance.enabled:
        return
    with postgres.connect(autocommit=True) as conn:
        try:
            gate.check(conn, kit.loaded, version=version, run_id=context.run.run_id)
        except gate.GateRefused as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
