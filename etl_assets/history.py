"""Configuration history: which metadata (by canonical hash) produced which published version,
and what changed between two versions' metadata.

Every upload records the metadata hash in `dm_registry.versions` and the document behind it in
`dm_registry.metadata_documents`; versions published before documents were kept fall back to
the metadata snapshot in the outbox (`<version>/datamodule.jsonld`). `dmetl history` and the
console use these functions. Metadata holds no records and no secrets (those come from the
environment), so showing it reveals nothing of the data.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from dataclasses import dataclass
from typing import Any

import psycopg
from botocore.exceptions import ClientError

from etl_assets import registry
from etl_assets.publish.version import SNAPSHOT_FILE
from resources.outbox import OutboxResource


class HistoryError(LookupError):
    """A version or its metadata cannot be found (says which and where it looked)."""


@dataclass(frozen=True)
class HistoryEntry:
    """One published version and the metadata that produced it."""

    version: str
    metadata_hash: str
    published_at: dt.datetime
    state: str  # published | expired
    current: bool
    run_id: str | None


@dataclass(frozen=True)
class MetadataRevision:
    """A metadata hash and the versions it produced, highest first."""

    metadata_hash: str
    versions: list[str]


def history(conn: psycopg.Connection, module: str) -> list[HistoryEntry]:
    """Every version of `module` in the registry with its metadata hash, highest first."""
    return [
        HistoryEntry(
            version=r["version"],
            metadata_hash=r["metadata_hash"],
            published_at=r["published_at"],
            state=r["state"],
            current=r["current"],
            run_id=r["run_id"],
        )
        for r in registry.list_versions(conn, module)
    ]


def revisions(entries: list[HistoryEntry]) -> list[MetadataRevision]:
    """The metadata hashes in the order they first produced a version (latest first)."""
    by_hash: dict[str, list[str]] = {}
    for entry in entries:
        by_hash.setdefault(entry.metadata_hash, []).append(entry.version)
    return [MetadataRevision(h, versions) for h, versions in by_hash.items()]


def metadata_of(
    conn: psycopg.Connection, module: str, version: str, outbox: OutboxResource | None = None
) -> tuple[str, dict[str, Any]]:
    """(hash, document) of the metadata that produced `version`: the registry's copy, else the
    outbox's snapshot of that version."""
    entry = next((e for e in history(conn, module) if e.version == version), None)
    if entry is None:
        known = ", ".join(e.version for e in history(conn, module)) or "none"
        raise HistoryError(f"{module} {version} is not a published version (published: {known})")
    doc = registry.metadata_document(conn, module, entry.metadata_hash)
    if doc is None and outbox is not None:
        try:
            doc = outbox.read_json(module, version, SNAPSHOT_FILE)
        except (FileNotFoundError, ClientError):  # no such file, or no such S3 object
            doc = None
    if doc is None:
        raise HistoryError(
            f"{module} {version}: the metadata {entry.metadata_hash[:16]} was not kept (published"
            " before dm_registry.metadata_documents existed) and the outbox has no"
            f" {version}/{SNAPSHOT_FILE}"
        )
    return entry.metadata_hash, doc


def canonical_text(document: dict[str, Any]) -> str:
    """The document as stable JSON text: sorted keys, two-space indent, one value per line."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def diff(
    conn: psycopg.Connection,
    module: str,
    old: str,
    new: str,
    outbox: OutboxResource | None = None,
    context: int = 3,
) -> str:
    """A unified diff of the canonical JSON of the metadata behind versions `old` and `new`
    (empty when they were produced by the same metadata)."""
    old_hash, old_doc = metadata_of(conn, module, old, outbox)
    new_hash, new_doc = metadata_of(conn, module, new, outbox)
    if old_hash == new_hash:
        return ""
    lines = difflib.unified_diff(
        canonical_text(old_doc).splitlines(keepends=True),
        canonical_text(new_doc).splitlines(keepends=True),
        fromfile=f"{module} {old} (metadata {old_hash[:16]})",
        tofile=f"{module} {new} (metadata {new_hash[:16]})",
        n=context,
    )
    return "".join(lines)
