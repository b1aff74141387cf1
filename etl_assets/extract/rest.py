"""The REST connector: JSON pages from an API (page, offset, cursor or `Link` pagination)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from etl_assets.errors import ExtractionError
from etl_assets.extract.records import records_to_frame
from etl_assets.metadata import CollectionEntry, RestConnector
from resources.http import HttpError, HttpResource, redact_url


def dig(data: Any, path: str | None, where: str) -> Any:
    """The value at a dotted `path` of a JSON document (None: the document itself)."""
    if not path:
        return data
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            raise ExtractionError(f"{where}: no key {part!r} on the path {path!r}")
        data = data[part]
    return data


def page_records(data: Any, connector: RestConnector, where: str) -> list[dict]:
    records = dig(data, connector.recordsPath, where)
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list) or any(not isinstance(r, dict) for r in records):
        raise ExtractionError(
            f"{where}: expected a list of JSON objects at recordsPath"
            f" {connector.recordsPath or '(the document)'!r}"
        )
    return records


def fetch_records(connector: RestConnector, http: HttpResource, log: Any = None) -> list[dict]:
    """Every page's records, following the connector's pagination up to `maxPages`."""
    url = http.url(connector.url)
    where = f"REST source {redact_url(url)} (connection {http.name!r})"
    params = dict(connector.params)
    mode = connector.pagination
    if mode in ("page", "offset"):
        params[connector.sizeParam] = connector.pageSize
        params[connector.pageParam] = 1 if mode == "page" else 0
    records: list[dict] = []
    session = http.session()
    try:
        for page in range(connector.maxPages):
            try:
                resp = http.get(session, url, params)
                data = resp.json()
            except HttpError as exc:
                raise ExtractionError(str(exc), retryable=exc.retryable) from None
            except ValueError:
                raise ExtractionError(f"{where}: page {page + 1} is not JSON") from None
            batch = page_records(data, connector, where)
            records.extend(batch)
            if mode == "none":
                break
            if mode in ("page", "offset"):
                if len(batch) < connector.pageSize:
                    break
                step = 1 if mode == "page" else len(batch)
                params[connector.pageParam] = params[connector.pageParam] + step
            elif mode == "cursor":
                if not connector.cursorPath:
                    raise ExtractionError(f"{where}: pagination cursor needs cursorPath")
                cursor = dig(data, connector.cursorPath, where) if batch else None
                if cursor in (None, ""):
                    break
                params[connector.cursorParam] = cursor
            elif mode == "link":
                nxt = resp.links.get("next", {}).get("url")
                if not nxt:
                    break
                url, params = nxt, {}  # the next link carries its own query
        else:
            # stopping here would publish a silently truncated version
            raise ExtractionError(
                f"{where}: more pages than maxPages={connector.maxPages}; raise maxPages or"
                " narrow the query"
            )
    finally:
        session.close()
    return records


def extract_rest(entry: CollectionEntry, folder: Path, context: Any) -> pd.DataFrame:
    connector: RestConnector = entry.extract
    if connector.connection is not None:
        http = HttpResource.from_connection(context.connection(connector.connection, "rest"))
    else:
        http = HttpResource(name=f"{entry.table}/{entry.source}")
    records = fetch_records(connector, http, getattr(context, "log", None))
    return records_to_frame(records)
