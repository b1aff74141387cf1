"""The audit log's vocabulary: what happened (`Action`) and how it ended (`Outcome`).

Every writer uses these names, so `dmetl audit list --action` finds one kind of event wherever it
came from. Add a member here (and to docs/security.md) before recording a new kind of event.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What a user or the system did (or tried to do)."""

    SIGN_IN = "auth.sign_in"  # a session started (or was refused: outcome denied)
    SIGN_OUT = "auth.sign_out"
    SERVE_START = "serve.start"  # dmetl serve started (mode, host, port)
    MUTATION = "graphql.mutation"  # any GraphQL mutation attempt; detail.operation names it
    REPORT_EVENT = "asset.report_event"  # the /report_asset_* routes
    RUN_LAUNCH = "run.launch"  # a run or backfill launched through the web
    RUN_START = "run.start"
    RUN_END = "run.end"  # detail.status: SUCCESS | FAILURE | CANCELED
    APPROVAL = "version.approve"
    REJECTION = "version.reject"
    UPLOAD = "version.upload"
    RETENTION_DELETE = "version.retention_delete"
    OUTBOX_CORRECTION = "outbox.correct"
    ACCESS_REQUEST = "access.request"
    ACCESS_DECISION = "access.decide"
    SCRIPT_RELEASE = "script.release"
    CONNECTION_CREATE = "connection.create"  # the connection registry (etl_assets/governance)
    CONNECTION_EDIT = "connection.edit"
    DRAFT_UPLOAD = "module.draft_upload"  # a metadata file uploaded as a draft of a module
    DRAFT_RELEASE = "module.draft_release"  # a draft written to the module folder
    DRAFT_DISCARD = "module.draft_discard"  # a draft set aside, never loaded
    RUN_REFUSED = "run.refused"  # the governance gate refused a run (grants, scripts)
    ROLE_CHANGE = "roles.change"
    CHECKPOINT = "audit.checkpoint"
    CONSOLE_REFUSED = "console.refused"  # a console page or form refused (role or CSRF)
    MODULE_PAUSE = "module.pause"  # dmetl pause: detail.stopped lists the schedules/sensors
    MODULE_RESUME = "module.resume"
    TICK_SKIP = "schedule.skip"  # the next scheduled tick of a module will be skipped
    RUN_CANCEL = "run.cancel"  # detail.force: marked canceled without the launcher
    RUN_RETRY = "run.retry"  # re-executed from failure; target.run is the new run
    VERSION_STOP = "version.stop"  # active runs canceled; detail.discard: outbox deleted


class Outcome(StrEnum):
    OK = "ok"  # allowed and done
    DENIED = "denied"  # refused: not signed in, role, transport, origin
    ERROR = "error"  # allowed, but it failed
