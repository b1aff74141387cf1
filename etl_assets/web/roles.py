"""The role table: what each role may do in Dagster (per-request permissions, so the UI greys
out the rest), which GraphQL mutations it may send (deny by default), and our own actions.

docs/security.md prints this table. `tests/test_web_dagster_internals.py` checks that every
mutation in Dagster's schema is classified here, and `tests/test_web_role_matrix.py` that a real
`dmetl serve` lets each role send exactly the mutations this table gives it.
"""

from __future__ import annotations

from enum import StrEnum

from etl_assets.web._dagster_internals import Permissions as P


class Role(StrEnum):
    VIEWER = "viewer"
    DATA_MANAGER = "data_manager"
    TASK_EDITOR = "task_editor"
    TASK_MANAGER = "task_manager"
    CONNECTION_OWNER = "connection_owner"
    ADMIN = "admin"


# Dagster permissions each role holds; every other permission is off for it.
_RUN_CONTROL = {
    P.LAUNCH_PIPELINE_EXECUTION,
    P.LAUNCH_PIPELINE_REEXECUTION,
    P.TERMINATE_PIPELINE_EXECUTION,
    P.LAUNCH_PARTITION_BACKFILL,
    P.CANCEL_PARTITION_BACKFILL,
    P.EDIT_DYNAMIC_PARTITIONS,
    P.START_SCHEDULE,
    P.STOP_RUNNING_SCHEDULE,
    P.EDIT_SENSOR,
    P.SCHEDULE_DRY_RUN,
    P.SENSOR_DRY_RUN,
    P.TOGGLE_AUTO_MATERIALIZE,
}
_CODE_CONTROL = {
    P.RELOAD_REPOSITORY_LOCATION,
    P.RELOAD_WORKSPACE,
    P.REFRESH_COMPONENT_STATE,
    P.SCHEDULE_DRY_RUN,
    P.SENSOR_DRY_RUN,
}
# Dagster+ only: editing app-managed components stays off for everyone, as in open source.
_NEVER = {P.EDIT_APP_MANAGED_COMPONENTS}

DAGSTER_PERMISSIONS: dict[Role, frozenset[P]] = {
    Role.VIEWER: frozenset(),
    Role.DATA_MANAGER: frozenset(),
    Role.CONNECTION_OWNER: frozenset(),
    Role.TASK_EDITOR: frozenset(_CODE_CONTROL),
    Role.TASK_MANAGER: frozenset(_RUN_CONTROL),
    Role.ADMIN: frozenset(set(P) - _NEVER),
}

# Each GraphQL mutation and the Dagster permission it needs. A mutation missing here is refused
# for every role (deny by default); ADMIN_ONLY ones need the admin role, COSMETIC ones change
# only what one user's browser shows and are open to every role but viewer. SIGNED_IN ones are
# what the UI sends whoever clicks in it (the welcome dialog's "Skip" records that the dialog was
# seen, nothing else), so every signed-in role may send them, viewer included.
ADMIN_ONLY = "admin"
COSMETIC = "cosmetic"
SIGNED_IN = "signed in"
MUTATIONS: dict[str, P | str] = {
    "addDynamicPartition": P.EDIT_DYNAMIC_PARTITIONS,
    "deleteDynamicPartitions": P.EDIT_DYNAMIC_PARTITIONS,
    "launchPartitionBackfill": P.LAUNCH_PARTITION_BACKFILL,
    "resumePartitionBackfill": P.LAUNCH_PARTITION_BACKFILL,
    "reexecutePartitionBackfill": P.LAUNCH_PARTITION_BACKFILL,
    "cancelPartitionBackfill": P.CANCEL_PARTITION_BACKFILL,
    "launchRun": P.LAUNCH_PIPELINE_EXECUTION,
    "launchPipelineExecution": P.LAUNCH_PIPELINE_EXECUTION,
    "launchMultipleRuns": P.LAUNCH_PIPELINE_EXECUTION,
    "launchRunReexecution": P.LAUNCH_PIPELINE_REEXECUTION,
    "launchPipelineReexecution": P.LAUNCH_PIPELINE_REEXECUTION,
    "terminateRun": P.TERMINATE_PIPELINE_EXECUTION,
    "terminateRuns": P.TERMINATE_PIPELINE_EXECUTION,
    "terminatePipelineExecution": P.TERMINATE_PIPELINE_EXECUTION,
    "deleteRun": P.DELETE_PIPELINE_RUN,
    "deletePipelineRun": P.DELETE_PIPELINE_RUN,
    "startSchedule": P.START_SCHEDULE,
    "resetSchedule": P.START_SCHEDULE,
    "stopRunningSchedule": P.STOP_RUNNING_SCHEDULE,
    "startSensor": P.EDIT_SENSOR,
    "stopSensor": P.EDIT_SENSOR,
    "resetSensor": P.EDIT_SENSOR,
    "setSensorCursor": P.UPDATE_SENSOR_CURSOR,
    "scheduleDryRun": P.SCHEDULE_DRY_RUN,
    "sensorDryRun": P.SENSOR_DRY_RUN,
    "setAutoMaterializePaused": P.TOGGLE_AUTO_MATERIALIZE,
    "reloadRepositoryLocation": P.RELOAD_REPOSITORY_LOCATION,
    "reloadWorkspace": P.RELOAD_WORKSPACE,
    "refreshComponentState": P.REFRESH_COMPONENT_STATE,
    "shutdownRepositoryLocation": ADMIN_ONLY,
    "wipeAssets": P.WIPE_ASSETS,
    "reportRunlessAssetEvents": P.REPORT_RUNLESS_ASSET_EVENTS,
    "reportAssetCheckEvaluations": P.REPORT_RUNLESS_ASSET_EVENTS,
    "setConcurrencyLimit": P.EDIT_CONCURRENCY_LIMIT,
    "deleteConcurrencyLimit": P.EDIT_CONCURRENCY_LIMIT,
    "freeConcurrencySlots": P.EDIT_CONCURRENCY_LIMIT,
    "freeConcurrencySlotsForRun": P.EDIT_CONCURRENCY_LIMIT,
    "setAppManagedComponent": P.EDIT_APP_MANAGED_COMPONENTS,
    "deleteAppManagedComponent": P.EDIT_APP_MANAGED_COMPONENTS,
    "logTelemetry": COSMETIC,
    "setNuxSeen": SIGNED_IN,
}

# Our own actions (the console, issue 12, and the CLI use these names).
ACTIONS: dict[str, frozenset[Role]] = {
    "published.view": frozenset(Role),
    "restricted.view": frozenset({Role.DATA_MANAGER, Role.ADMIN}),  # previews, quarantine
    "outbox.correct": frozenset({Role.DATA_MANAGER, Role.ADMIN}),
    "version.approve": frozenset({Role.TASK_MANAGER, Role.ADMIN}),
    "version.reject": frozenset({Role.TASK_MANAGER, Role.ADMIN}),
    "run.control": frozenset({Role.TASK_MANAGER, Role.ADMIN}),  # start, pause, stop, resume
    "module.edit": frozenset({Role.TASK_EDITOR, Role.ADMIN}),
    "script.release": frozenset({Role.TASK_EDITOR, Role.ADMIN}),
    "connection.edit": frozenset({Role.TASK_EDITOR, Role.ADMIN}),
    "access.request": frozenset(Role),
    "access.decide": frozenset({Role.CONNECTION_OWNER, Role.ADMIN}),  # on their connections
    "audit.view": frozenset({Role.TASK_MANAGER, Role.DATA_MANAGER, Role.ADMIN}),
    "roles.edit": frozenset({Role.ADMIN}),
}

RESTRICTED_METADATA_PREFIX = "dm/restricted/"


def sees_restricted(roles: frozenset[Role] | set[Role]) -> bool:
    return bool(set(roles) & ACTIONS["restricted.view"])


def dagster_permissions(roles: frozenset[Role] | set[Role]) -> frozenset[P]:
    """The union of the Dagster permissions of `roles`."""
    return frozenset().union(*(DAGSTER_PERMISSIONS[r] for r in roles))


def may_mutate(roles: frozenset[Role] | set[Role], mutation: str) -> bool:
    """Whether one of `roles` may send `mutation` (unknown mutations: nobody)."""
    need = MUTATIONS.get(mutation)
    if need is None:
        return False
    if need == ADMIN_ONLY:
        return Role.ADMIN in roles
    if need == SIGNED_IN:
        return bool(roles)
    if need == COSMETIC:
        return bool(set(roles) - {Role.VIEWER})
    return need in dagster_permissions(roles)


def allowed_mutations(roles: frozenset[Role] | set[Role]) -> frozenset[str]:
    return frozenset(m for m in MUTATIONS if may_mutate(roles, m))


def may(roles: frozenset[Role] | set[Role], action: str) -> bool:
    """Whether one of `roles` may do one of our own actions (see ACTIONS)."""
    return bool(set(roles) & ACTIONS.get(action, frozenset()))
