"""The registry in PostgreSQL (`dm_registry`): published versions, approvals, and the version
numbers handed out to runs. Every SQL statement about them lives in this package: `schema` (the
tables), `versions`, `approvals` (and allocations), `control` (skips, pauses, discards, alerts).

- `versions`: one row per published version (any sink), with where each table went (the
  version's own relations or objects, never the live view), its `state` (`published`, or
  `expired` once retention removed its data) and `current` (the one version consumers read as
  `<schema>.<table>`: the highest published one). Consumers may read this table.
- `metadata_documents`: the module's metadata document behind each canonical hash, so that the
  configuration that produced a version can be shown and compared (`etl_assets/history.py`).
- `approvals`: a task manager's approval of a prepared version's upload.
- `allocations`: every version number handed out by the allocator, so that two triggers (a
  schedule tick and a sensor, or ten `dmetl run`s) never pick the same one, and which run holds it.
- `skips`: a request to skip a module's next scheduled tick, and the tick that consumed it.
- `pauses`: which schedules and sensors `dmetl pause` stopped, so `dmetl resume` restarts those.
- `alerts`: the runs an alert was sent for, so a sensor restarted mid-tick never sends twice.
- `discards`: prepared versions thrown away (`dmetl stop --discard`); never uploaded afterwards.
"""

from __future__ import annotations

from etl_assets.registry.approvals import (
    allocated_versions,
    allocation,
    approval,
    approve,
    discarded_versions,
    kept_versions,
    lock_module,
    module_allocations,
    module_approvals,
    pending_approvals,
    record_allocation,
    withdraw_approval,
)
from etl_assets.registry.control import (
    claim_alert,
    consume_skip,
    is_discarded,
    is_published,
    pause_of,
    pending_skips,
    record_discard,
    record_pause,
    request_skip,
    take_pause,
)
from etl_assets.registry.schema import (
    COLUMNS,
    DDL,
    EXPIRED,
    PUBLISHED,
    SCHEMA,
    TABLES,
    ensure,
)
from etl_assets.registry.versions import (
    current_row_counts,
    current_version,
    expire_version,
    highest,
    list_versions,
    mark_current,
    metadata_document,
    published_versions,
    record_document,
    record_version,
)

__all__ = [
    "COLUMNS",
    "DDL",
    "EXPIRED",
    "PUBLISHED",
    "SCHEMA",
    "TABLES",
    "allocated_versions",
    "allocation",
    "approval",
    "approve",
    "claim_alert",
    "consume_skip",
    "current_row_counts",
    "current_version",
    "discarded_versions",
    "ensure",
    "expire_version",
    "highest",
    "is_discarded",
    "is_published",
    "kept_versions",
    "list_versions",
    "lock_module",
    "mark_current",
    "metadata_document",
    "module_allocations",
    "module_approvals",
    "pause_of",
    "pending_approvals",
    "pending_skips",
    "published_versions",
    "record_allocation",
    "record_discard",
    "record_document",
    "record_pause",
    "record_version",
    "request_skip",
    "take_pause",
    "withdraw_approval",
]
