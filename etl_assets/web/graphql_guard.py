"""What a GraphQL request may do: which operation it is and which root mutations it selects
(through fragments too), the per-role allow-list, and the resolver middleware that sets the
launching user's tag, strips restricted metadata and audits every mutation's outcome."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)

from etl_assets import audit
from etl_assets.web._dagster_internals import USER_TAG
from etl_assets.web.auditing import Auditor
from etl_assets.web.identity import Principal
from etl_assets.web.roles import RESTRICTED_METADATA_PREFIX, sees_restricted

MAX_TOKENS = 20_000
SPOOFABLE_TAGS = {USER_TAG, "dagster/user", "dagster/reporting_user"}
# mutations whose arguments carry run tags: (argument, where the tags list is)
_TAG_PATHS = {
    "launchRun": ("executionParams", ("executionMetadata", "tags")),
    "launchPipelineExecution": ("executionParams", ("executionMetadata", "tags")),
    "launchRunReexecution": ("executionParams", ("executionMetadata", "tags")),
    "launchPipelineReexecution": ("executionParams", ("executionMetadata", "tags")),
    "launchPartitionBackfill": ("backfillParams", ("tags",)),
}
LAUNCHES = {*_TAG_PATHS, "launchMultipleRuns", "reexecutePartitionBackfill"}


@dataclass(frozen=True)
class Operation:
    kind: str  # query | mutation | subscription
    root_fields: tuple[str, ...]


class RequestRefused(ValueError):
    """The document cannot be analysed (the message says why)."""


def _root_fields(
    selection_set: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], seen: set
) -> Iterator[str]:
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            yield sel.name.value
        elif isinstance(sel, InlineFragmentNode):
            yield from _root_fields(sel.selection_set, fragments, seen)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
            seen.add(sel.name.value)
            fragment = fragments.get(sel.name.value)
            if fragment is not None:
                yield from _root_fields(fragment.selection_set, fragments, seen)


def analyze(query: str, operation_name: str | None) -> tuple[Operation, DocumentNode]:
    """The operation a request would run and its root fields."""
    try:
        document = parse(query, max_tokens=MAX_TOKENS)
    except GraphQLError as exc:
        raise RequestRefused(f"the GraphQL document does not parse: {exc.message}") from None
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    if operation_name:
        ops = [o for o in ops if o.name and o.name.value == operation_name]
    if len(ops) != 1:
        raise RequestRefused("the request must name exactly one operation (operationName)")
    op = ops[0]
    fields = tuple(f for f in _root_fields(op.selection_set, fragments, set()) if f != "__typename")
    return Operation(op.operation.value, fields), document


# --- what a mutation is about ---------------------------------------------------------------


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _module_of_job(job: str) -> str | None:
    for suffix in ("_prepare_job", "_upload_job", "_job"):
        if job.endswith(suffix) and not job.startswith("__"):
            return job.removesuffix(suffix)
    return None


def describe(args: Mapping[str, Any]) -> audit.Target:
    """Module, version, run and asset named by a mutation's arguments (ids only, no values)."""
    module = version = run = name = None
    for key, value in _walk(args):
        if key == "assetKey" and isinstance(value, Mapping) and value.get("path"):
            name = name or "/".join(value["path"])
            module = module or value["path"][0]
        elif key == "path" and isinstance(value, list) and value and not name:
            name = "/".join(map(str, value))
            module = module or str(value[0])
        elif key == "partitionsDefName" and isinstance(value, str):
            module = module or value.removesuffix("_versions")
        elif key in ("jobName", "pipelineName") and isinstance(value, str):
            module = module or _module_of_job(value)
            name = name or value
        elif key in ("partitionKey",) and isinstance(value, str):
            version = version or value
        elif key == "partitionKeys" and isinstance(value, list) and value:
            version = version or ",".join(map(str, value[:5]))
        elif key in ("runId", "parentRunId") and isinstance(value, str):
            run = run or value
        elif key == "runIds" and isinstance(value, list) and value:
            run = run or ",".join(map(str, value[:5]))
        elif key == "tags" and isinstance(value, list):
            for tag in value:
                if isinstance(tag, Mapping) and tag.get("key") == "dagster/partition":
                    version = version or tag.get("value")
    return audit.Target(module=module, version=version, run=run, name=name)


def _with_user_tag(tags: list | None, user: str) -> list:
    kept = [t for t in (tags or []) if t.get("key") not in SPOOFABLE_TAGS]
    return [*kept, {"key": USER_TAG, "value": user}]


def set_launching_user(field: str, args: dict[str, Any], user: str) -> dict[str, Any]:
    """Arguments with any spoofed `user` tag replaced by the signed-in user."""
    args = dict(args)
    if field == "launchMultipleRuns":
        params = [dict(p) for p in args.get("executionParamsList") or []]
        for p in params:
            meta = dict(p.get("executionMetadata") or {})
            meta["tags"] = _with_user_tag(meta.get("tags"), user)
            p["executionMetadata"] = meta
        args["executionParamsList"] = params
    elif field in ("launchRunReexecution", "launchPipelineReexecution") and args.get(
        "reexecutionParams"
    ):
        params = dict(args["reexecutionParams"])
        params["extraTags"] = _with_user_tag(params.get("extraTags"), user)
        args["reexecutionParams"] = params
    elif field in _TAG_PATHS and args.get(_TAG_PATHS[field][0]):
        top, path = _TAG_PATHS[field]
        params = dict(args[top])
        holder = params
        for part in path[:-1]:
            holder[part] = dict(holder.get(part) or {})
            holder = holder[part]
        holder[path[-1]] = _with_user_tag(holder.get(path[-1]), user)
        args[top] = params
    return args


def _outcome(result: Any) -> tuple[audit.Outcome, dict[str, Any]]:
    typename = type(result).__name__.removeprefix("Graphene")
    detail: dict[str, Any] = {"result": typename}
    if typename in ("UnauthorizedError",):
        return audit.Outcome.DENIED, detail
    if typename.endswith("Error") or typename.endswith("NotFound") or "Invalid" in typename:
        return audit.Outcome.ERROR, detail
    run = getattr(result, "run", None)
    run_id = getattr(run, "runId", None) or getattr(run, "run_id", None)
    if run_id:
        detail["run"] = str(run_id)
    backfill_id = getattr(result, "backfill_id", None) or getattr(result, "backfillId", None)
    if backfill_id:
        detail["backfill"] = str(backfill_id)
    return audit.Outcome.OK, detail


class GuardMiddleware:
    """graphql-core resolver middleware (HTTP and our websocket executor both use it)."""

    def __init__(self, auditor: Auditor):
        self.auditor = auditor

    def resolve(self, next_, root, info, **args):
        if info.path.prev is None and info.operation.operation.value == "mutation":
            return self._mutation(next_, root, info, args)
        result = next_(root, info, **args)
        if info.field_name == "metadataEntries":
            principal = getattr(info.context, "principal", None)
            if principal is None or not sees_restricted(principal.roles):
                return _strip_restricted(result)
        return result

    def _mutation(self, next_, root, info, args):
        principal: Principal = info.context.principal
        field = info.field_name
        if field in LAUNCHES:
            args = set_launching_user(field, args, principal.name)
        target = describe(args)
        try:
            result = next_(root, info, **args)
        except Exception as exc:
            self._record(
                principal, field, target, audit.Outcome.ERROR, {"error": type(exc).__name__}
            )
            raise
        if isawaitable(result):
            return self._finish_async(result, principal, field, target)
        self._record(principal, field, target, *_outcome(result))
        return result

    async def _finish_async(self, result, principal, field, target):
        try:
            value = await result
        except Exception as exc:
            self._record(
                principal, field, target, audit.Outcome.ERROR, {"error": type(exc).__name__}
            )
            raise
        self._record(principal, field, target, *_outcome(value))
        return value

    def _record(self, principal, field, target, outcome, detail) -> None:
        if detail.get("run") and not target.run:
            target = audit.Target(target.module, target.version, detail["run"], target.name)
        action = audit.Action.RUN_LAUNCH if field in LAUNCHES else audit.Action.MUTATION
        self.auditor.record(
            principal,
            action,
            target=target,
            outcome=outcome,
            detail={"operation": field, "transport": "http", **detail},
        )


def _strip_restricted(result):
    if isawaitable(result):

        async def later():
            return _strip_restricted(await result)

        return later()
    if isinstance(result, list):
        return [
            e
            for e in result
            if not str(getattr(e, "label", "") or "").startswith(RESTRICTED_METADATA_PREFIX)
        ]
    return result
