"""Dagster's webserver with our GraphQL rules: GET runs queries only, POST only as
`application/json` with nothing in the URL, mutations only from the role's allow-list (every
attempt audited), and a websocket that runs subscriptions only, through the same resolver
middleware as HTTP (Dagster's own runs them without it)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

from graphql import ExecutionResult, GraphQLError, validate
from graphql.execution import create_source_event_stream, execute
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from etl_assets import audit
from etl_assets.web._dagster_internals import DagsterWebserver
from etl_assets.web.auditing import Auditor
from etl_assets.web.context import principal_of
from etl_assets.web.graphql_guard import GuardMiddleware, Operation, RequestRefused, analyze
from etl_assets.web.identity import Principal
from etl_assets.web.roles import may_mutate
from etl_assets.web.transport import ORIGIN_REFUSED_KEY, json_error

MAX_REFUSED_BODY = 1 << 20


class DmWebserver(DagsterWebserver):
    def __init__(self, process_context, auditor: Auditor, **kwargs):
        self.auditor = auditor
        super().__init__(process_context, **kwargs)

    def build_graphql_middleware(self) -> list:
        return [GuardMiddleware(self.auditor)]

    # --- HTTP ---------------------------------------------------------------------------------

    def _audit_refused(
        self, principal: Principal, op: Operation, transport: str, reason: str
    ) -> None:
        for field in op.root_fields:
            self.auditor.record(
                principal,
                audit.Action.MUTATION,
                outcome=audit.Outcome.DENIED,
                detail={"operation": field, "transport": transport, "reason": reason},
            )

    def _mutation_in(self, query: str | None, operation_name: str | None) -> Operation | None:
        if not query:
            return None
        try:
            op, _ = analyze(query, operation_name)
        except RequestRefused:
            return None
        return op if op.kind == "mutation" else None

    async def graphql_http_endpoint(self, request: Request) -> Response:
        principal = principal_of(request)
        params = request.query_params
        if request.method == "GET":
            op = self._mutation_in(params.get("query"), params.get("operationName"))
            if op is not None:
                self._audit_refused(principal, op, "GET", "mutations need a JSON POST")
                return PlainTextResponse(
                    "GET runs queries only: send mutations as a JSON POST",
                    405,
                    headers={"Allow": "POST"},
                )
            return await super().graphql_http_endpoint(request)
        if request.method != "POST":
            return PlainTextResponse("Method Not Allowed", 405)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        refused_origin = request.scope.get(ORIGIN_REFUSED_KEY)
        if refused_origin or media != "application/json" or "query" in params:
            return await self._refuse_post(request, principal, media, refused_origin)
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return PlainTextResponse("the GraphQL request is not valid JSON", 400)
        if not isinstance(data, dict):
            return PlainTextResponse("send one GraphQL request as a JSON object (no batches)", 400)
        query, variables = data.get("query"), data.get("variables")
        operation_name = data.get("operationName")
        if not isinstance(query, str):
            return PlainTextResponse("No GraphQL query found in the request", 400)
        if variables is not None and not isinstance(variables, dict):
            return PlainTextResponse("GraphQL variables must be a JSON object", 400)
        try:
            op, _ = analyze(query, operation_name)
        except RequestRefused as exc:
            return json_error(str(exc), 400, "DM_BAD_REQUEST")
        if op.kind == "subscription":
            return json_error("subscriptions run over the websocket", 400, "DM_BAD_REQUEST")
        if op.kind == "mutation":
            roles = principal.roles | principal.owner_roles
            refused = [f for f in op.root_fields if not may_mutate(roles, f)]
            if refused:
                label = principal.role_label
                self._audit_refused(
                    principal, Operation("mutation", tuple(refused)), "http", f"role {label}"
                )
                names = ", ".join(refused)
                return json_error(f"your role ({label}) may not run {names}", 403)
        return await self.execute_graphql_request(
            request=request, query=query, variables=variables, operation_name=operation_name
        )

    async def _refuse_post(
        self, request: Request, principal: Principal, media: str, refused_origin: str | None
    ) -> Response:
        """A cross-origin POST, or one that Dagster would run from the URL or a non-JSON body:
        refused, and audited when it holds a mutation."""
        body = (await request.body())[:MAX_REFUSED_BODY].decode("utf-8", "replace")
        candidates = [request.query_params.get("query")]
        if media == "application/x-www-form-urlencoded":
            candidates += parse_qs(body).get("query", [])
        else:
            try:
                loaded = json.loads(body)
                candidates.append(loaded.get("query") if isinstance(loaded, dict) else None)
            except json.JSONDecodeError:
                candidates.append(body)
        transport = f"POST {media or 'without content type'}"
        reason = "cross-origin" if refused_origin else "not a JSON POST"
        for query in candidates:
            op = self._mutation_in(query, None)
            if op is not None:
                self._audit_refused(principal, op, transport, reason)
                break
        if refused_origin:
            return PlainTextResponse(refused_origin, 403)
        if "query" in request.query_params:
            return PlainTextResponse("a POST carries its query in a JSON body, not in the URL", 400)
        return PlainTextResponse("GraphQL POSTs must be application/json", 415)

    # --- websocket ----------------------------------------------------------------------------

    async def graphql_ws_endpoint(self, websocket: WebSocket) -> None:
        """The graphql-ws protocol Dagster's UI speaks, with subscriptions only."""
        tasks: dict[str, asyncio.Task] = {}
        await websocket.accept(subprotocol="graphql-ws")
        try:
            while websocket.application_state != WebSocketState.DISCONNECTED:
                message = await websocket.receive_json()
                op_id, kind = message.get("id"), message.get("type")
                if kind == "connection_init":
                    await websocket.send_json({"type": "connection_ack"})
                elif kind == "connection_terminate":
                    await websocket.close()
                    break
                elif kind == "start" and op_id not in tasks:
                    task = await self._start(websocket, op_id, message.get("payload") or {})
                    if task is not None:
                        tasks[op_id] = task
                elif kind == "stop" and op_id in tasks:
                    tasks.pop(op_id).cancel()
        except WebSocketDisconnect:
            pass
        finally:
            for task in tasks.values():
                task.cancel()

    async def _start(self, websocket: WebSocket, op_id: Any, payload: dict) -> asyncio.Task | None:
        principal = principal_of(websocket)
        query = payload.get("query")
        try:
            op, document = analyze(
                query if isinstance(query, str) else "", payload.get("operationName")
            )
        except RequestRefused as exc:
            await _send(websocket, "error", {"message": str(exc)}, op_id)
            return None
        if op.kind != "subscription":
            if op.kind == "mutation":
                self._audit_refused(
                    principal, op, "websocket", "the websocket runs subscriptions only"
                )
            await _send(
                websocket, "error", {"message": "the websocket runs subscriptions only"}, op_id
            )
            return None
        schema = self._graphene_schema.graphql_schema
        errors = validate(schema, document)
        if errors:
            await _send(websocket, "error", errors[0].formatted, op_id)
            return None
        variables = payload.get("variables")
        with self.request_context(websocket) as context:
            stream = await create_source_event_stream(
                schema, document, None, context, variables, payload.get("operationName")
            )
        if isinstance(stream, ExecutionResult):
            error = stream.errors[0].formatted if stream.errors else {"message": "failed"}
            await _send(websocket, "error", error, op_id)
            return None

        async def run() -> None:
            try:
                async for event in stream:
                    result = execute(
                        schema, document, event, context, variables, payload.get("operationName"),
                        middleware=self._graphql_middleware,
                    )  # fmt: skip
                    if asyncio.iscoroutine(result):
                        result = await result
                    out: dict[str, Any] = {"data": result.data}
                    if result.errors:
                        out["errors"] = [e.formatted for e in result.errors]
                    await _send(websocket, "data", out, op_id)
            except GraphQLError as exc:
                await _send(websocket, "data", {"data": None, "errors": [exc.formatted]}, op_id)
            await _send(websocket, "complete", None, op_id)

        return asyncio.get_running_loop().create_task(run())


async def _send(websocket: WebSocket, kind: str, payload: Any, op_id: Any) -> None:
    message: dict[str, Any] = {"type": kind, "id": op_id}
    if payload is not None:
        message["payload"] = payload
    if (
        websocket.client_state != WebSocketState.DISCONNECTED
        and websocket.application_state != WebSocketState.DISCONNECTED
    ):
        await websocket.send_json(message)
