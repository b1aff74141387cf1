"""REST source against a real `http.server` on loopback: auth, pagination, 429 + Retry-After."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import dagster as dg
import pytest

from etl_assets.errors import ExtractionError
from etl_assets.extract.rest import fetch_records
from etl_assets.metadata import RestConnector
from resources.http import HttpResource
from tests.helpers import CONTEXT, run_version, write_module
from tests.servers import http_server

pytestmark = pytest.mark.integration
TOKEN = "tok-123-secret"
ITEMS = [{"id": i, "name": f"item {i}", "tags": {"even": i % 2 == 0}} for i in range(23)]


class Api(BaseHTTPRequestHandler):
    """`/items` paged by page/per_page or offset/limit, `/cursor`, `/linked`; bearer auth;
    the first request for page 2 gets 429 with Retry-After: 1, the first for page 3 a 503."""

    hits: dict[str, int] = {}
    times: list[float] = []

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: object = None, headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        data = json.dumps(body).encode() if body is not None else b""
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"error": "unauthorized"})
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        Api.times.append(time.monotonic())
        key = f"{url.path}?{url.query}"
        Api.hits[key] = Api.hits.get(key, 0) + 1
        if url.path == "/items":
            if "page" in q:
                page, size = int(q["page"]), int(q["per_page"])
                if page == 2 and Api.hits[key] == 1:
                    return self._send(429, {"error": "slow down"}, {"Retry-After": "1"})
                if page == 3 and Api.hits[key] == 1:
                    return self._send(503, {"error": "busy"})
                start = (page - 1) * size
            else:
                start, size = int(q["offset"]), int(q["limit"])
            return self._send(200, {"data": {"items": ITEMS[start : start + size]}})
        if url.path == "/cursor":
            start = int(q.get("after", 0))
            nxt = start + 10 if start + 10 < len(ITEMS) else None
            return self._send(200, {"results": ITEMS[start : start + 10], "next": nxt})
        if url.path == "/linked":
            start = int(q.get("from", 0))
            headers = {}
            if start + 10 < len(ITEMS):
                port = self.server.server_address[1]
                headers["Link"] = f'<http://127.0.0.1:{port}/linked?from={start + 10}>; rel="next"'
            return self._send(200, ITEMS[start : start + 10], headers)
        return self._send(404, {"error": "not found"})


@pytest.fixture
def api():
    Api.hits, Api.times = {}, []
    with http_server(Api) as base:
        yield base


def test_module_pages_through_429_and_503(api, tmp_path, resources, monkeypatch):
    monkeypatch.setenv("DM_TEST_API", api)
    monkeypatch.setenv("DM_TEST_API_TOKEN", TOKEN)
    doc = {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": "api_mod",
        "version": "1.0.0",
        "autoUpload": True,
        "retry": {"maxRetries": 0},
        "connections": [
            {
                "name": "catalog",
                "type": "rest",
                "urlEnv": "DM_TEST_API",
                "options": {"auth": "bearer"},
                "secretEnv": {"token": "DM_TEST_API_TOKEN"},
            }
        ],
        "tables": [
            {
                "name": "items",
                "primaryKey": ["id"],
                "onKeyConflict": "dropAll",
                "columns": [
                    {"name": "id", "dataType": "integer", "nullable": False},
                    {"name": "name", "dataType": "string"},
                ],
            }
        ],
        "collection": [
            {
                "table": "items",
                "source": "api",
                "extract": {
                    "type": "rest",
                    "connection": "catalog",
                    "url": "/items",
                    "recordsPath": "data.items",
                    "pagination": "page",
                    "pageSize": 10,
                },
            }
        ],
    }
    folder = write_module(tmp_path / "api_mod", doc)
    result = run_version(
        folder, "1.0.0", resources, dg.DagsterInstance.ephemeral(), job="api_mod_prepare_job"
    )
    assert result.success
    out = resources["outbox"].read_table("api_mod", "1.0.0", "items")
    assert sorted(out["id"].tolist()) == list(range(23))
    assert Api.hits["/items?per_page=10&page=2"] == 2  # retried after the 429
    assert Api.hits["/items?per_page=10&page=3"] == 2  # and after the 503
    # the retry of page 2 waited for Retry-After (1 s)
    assert max(b - a for a, b in zip(Api.times, Api.times[1:], strict=False)) >= 0.9


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"url": "/items", "recordsPath": "data.items", "pagination": "offset",
          "pageParam": "offset", "sizeParam": "limit", "pageSize": 5}, 23),
        ({"url": "/cursor", "recordsPath": "results", "pagination": "cursor",
          "cursorPath": "next", "cursorParam": "after"}, 23),
        ({"url": "/linked", "pagination": "link"}, 23),
    ],
)  # fmt: skip
def test_pagination_modes(api, options, expected):
    http = HttpResource(name="catalog", base_url=api, auth="bearer", token=TOKEN)
    records = fetch_records(RestConnector(**options), http)
    assert sorted(r["id"] for r in records) == list(range(expected))


def test_bad_token_names_connection_not_token(api):
    http = HttpResource(name="catalog", base_url=api, auth="bearer", token="wrong-secret")
    with pytest.raises(ExtractionError) as err:
        fetch_records(RestConnector(url="/items"), http)
    assert "'catalog'" in str(err.value) and "401" in str(err.value)
    assert "wrong-secret" not in str(err.value)


def test_more_pages_than_max_pages_fails_instead_of_truncating(api):
    http = HttpResource(name="catalog", base_url=api, auth="bearer", token=TOKEN)
    connector = RestConnector(url="/cursor", recordsPath="results", pagination="cursor",
                              cursorPath="next", cursorParam="after", maxPages=2)  # fmt: skip
    with pytest.raises(ExtractionError, match="more pages than maxPages=2") as err:
        fetch_records(connector, http)
    assert not err.value.retryable


def test_secrets_in_urls_are_redacted_and_outages_are_retryable():
    http = HttpResource(name="catalog", base_url="http://127.0.0.1:9", retries=0)
    with pytest.raises(ExtractionError) as err:
        fetch_records(RestConnector(url="/items?api_key=hunter2"), http)
    assert "hunter2" not in str(err.value) and "api_key=***" in str(err.value)
    assert err.value.retryable  # nothing listens: an outage, worth a step retry
