"""JSON-LD processing with the bundled @context: an offline document loader and the
canonical (URDNA2015) hash that versions a module's metadata."""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

from pyld import jsonld

CONTEXT_URL = "https://w3id.org/datamodule-etl/context/v1"
CONTEXT_URLS = {
    CONTEXT_URL: "datamodule-v1.jsonld",
    CONTEXT_URL + ".jsonld": "datamodule-v1.jsonld",
}


@cache
def bundled_context(url: str = CONTEXT_URL) -> dict[str, Any]:
    """The context document shipped with the package for `url`."""
    text = (
        resources.files("etl_assets.metadata.context")
        .joinpath(CONTEXT_URLS[url])
        .read_text("utf-8")
    )
    return json.loads(text)


class UnknownContextError(ValueError):
    """A document referenced a context that is not bundled (nothing is fetched at load time)."""


def offline_loader(url: str, options: dict | None = None) -> dict[str, Any]:
    """pyld document loader that serves bundled contexts and refuses the network."""
    if url not in CONTEXT_URLS:
        raise UnknownContextError(
            f"unknown @context {url!r}: expected {CONTEXT_URL!r} (contexts are never fetched)"
        )
    return {
        "contextUrl": None,
        "documentUrl": url,
        "document": copy.deepcopy(bundled_context(url)),
    }


def _options() -> dict[str, Any]:
    return {"documentLoader": offline_loader}


def expand(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Expanded JSON-LD of the document (validates the JSON-LD itself)."""
    return jsonld.expand(document, _options())


def canonical_nquads(document: dict[str, Any]) -> str:
    """The document as canonical N-Quads (RDF Dataset Canonicalization, URDNA2015)."""
    return jsonld.normalize(
        document,
        {**_options(), "algorithm": "URDNA2015", "format": "application/n-quads"},
    )


def metadata_hash(document: dict[str, Any]) -> str:
    """sha256 of the canonical N-Quads: equal for documents that mean the same thing."""
    return hashlib.sha256(canonical_nquads(document).encode("utf-8")).hexdigest()


def describe_jsonld_error(exc: BaseException) -> str:
    """pyld's error (a chain of JsonLdErrors) as one line: what is wrong, then its code."""
    causes = []
    current: BaseException | None = exc
    while current is not None and len(causes) < 10:
        causes.append(current)
        current = getattr(current, "cause", None) or current.__cause__
    for cause in reversed(causes):
        if isinstance(cause, UnknownContextError):
            return str(cause)
    first = causes[0]
    text = first.args[0] if first.args and isinstance(first.args[0], str) else str(first)
    text = text.replace("Invalid JSON-LD syntax; ", "").rstrip(".")
    code = getattr(first, "code", None)
    return f"{text} ({code})" if code else text
