"""Contract of the Dagster-private names the web layer uses (etl_assets/web/_dagster_internals.py):
a Dagster upgrade that moves or changes them fails here."""

import inspect

from etl_assets.web import _dagster_internals as di
from etl_assets.web.context import RoleRequestContext, permission_map
from etl_assets.web.roles import MUTATIONS, Role, dagster_permissions


def test_the_permission_enum_and_the_user_tag_are_what_we_map():
    assert di.USER_TAG == "user"
    assert di.LOCATION_SCOPED_PERMISSIONS <= set(di.Permissions)
    perms = permission_map(dagster_permissions({Role.TASK_MANAGER}), "task_manager")
    assert set(perms) == set(di.Permissions)  # a missing key is an HTTP 500 in Dagster
    assert perms[di.Permissions.LAUNCH_PIPELINE_EXECUTION].enabled
    assert not perms[di.Permissions.WIPE_ASSETS].enabled


def test_the_webserver_hooks_we_override_exist_with_their_signatures():
    for name in ("graphql_http_endpoint", "graphql_ws_endpoint", "execute_graphql_request",
                 "build_graphql_middleware", "create_asgi_app", "request_context"):  # fmt: skip
        assert callable(getattr(di.DagsterWebserver, name)), name
    params = inspect.signature(di.WorkspaceRequestContext.__init__).parameters
    assert {"instance", "current_workspace", "process_context", "version", "source",
            "read_only"} <= set(params)  # fmt: skip
    for name in ("permissions_for_owner", "viewer_has_any_owner_definition_permissions",
                 "get_viewer_tags", "get_reporting_user_tags"):  # fmt: skip
        assert hasattr(RoleRequestContext, name)


def test_every_mutation_of_the_schema_is_classified():
    schema = di.graphql_schema()
    assert set(schema.mutation_type.fields) <= set(MUTATIONS)
    assert set(schema.subscription_type.fields) == {
        "capturedLogs", "locationStateChangeEvents", "pipelineRunLogs",
    }  # fmt: skip


def test_what_the_console_launches_runs_with():
    import dagster as dg
    from dagster_graphql.implementation.execution import run_lifecycle
    from dagster_graphql.implementation.utils import ExecutionMetadata, ExecutionParams

    assert list(inspect.signature(run_lifecycle.create_valid_pipeline_run).parameters) == [
        "graphql_context", "remote_job", "execution_params",
    ]  # fmt: skip
    assert ExecutionParams._fields == (
        "selector", "run_config", "mode", "execution_metadata", "step_keys",
    )  # fmt: skip
    assert ExecutionMetadata(run_id=None, tags={"a": "b"}).tags == {"a": "b"}
    selector = di.JobSubsetSelector("loc", "repo", "job", None)
    assert (selector.location_name, selector.job_name, selector.asset_selection) == (
        "loc", "job", None,
    )  # fmt: skip
    assert callable(dg.DagsterInstance.submit_run)
