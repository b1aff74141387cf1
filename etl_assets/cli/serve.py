"""`dmetl serve`: the Dagster UI and GraphQL API behind sign-in (see docs/security.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from etl_assets.audit import checkpoints
from etl_assets.cli.session import Session
from resources.deployment import (
    PROJECT_ROOT,
    DeploymentError,
    audit_settings,
    local_user_name,
    s3_resource,
    web_settings,
)
from resources.io_manager import ParquetIOManager


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "serve",
        help="the Dagster UI and GraphQL API behind sign-in, and the daemon",
        add_help=False,
    )
    c.add_argument("--help", action="help", help="show this help and exit")
    c.add_argument("--host", "-h", default="127.0.0.1", help="address to listen on")
    c.add_argument("--port", "-p", type=int, default=3000, help="port to listen on")
    c.add_argument("--workspace", "-w", default=str(PROJECT_ROOT / "workspace.yaml"))
    c.add_argument("--no-daemon", action="store_true", help="do not start dagster-daemon")
    c.set_defaults(fn=cmd_serve)


def checkpoint_store(session: Session, location: str):
    client = s3_resource(session.deployment).get_client() if location.startswith("s3://") else None
    return checkpoints.store_for(location, client)


def cmd_serve(args: argparse.Namespace, session: Session) -> int:
    # the web server and the console load here, not with the CLI: `dmetl run` and the other
    # commands would pay for them at every start (~1.6 s)
    from etl_assets.console.app import console_factory
    from etl_assets.console.framework import ConsoleServices
    from etl_assets.web.identity import RoleMappingError
    from etl_assets.web.server import ServeError, ServeOptions, serve

    try:
        web = web_settings(session.deployment)
        settings = audit_settings(session.deployment)
        store = checkpoint_store(session, settings.checkpoints)
        services = ConsoleServices(
            instance=session.instance,
            postgres=session.postgres,
            outbox=session.outbox,
            modules_dir=session.deployment.modules_dir,
            audit_settings=settings,
            checkpoint_store=store,
            storage=ParquetIOManager(base_dir=session.deployment.storage_root),
        )

        serve(
            web=web,
            audit_settings=settings,
            postgres=session.postgres,
            instance=session.instance,
            options=ServeOptions(args.host, args.port, Path(args.workspace), not args.no_daemon),
            local_user=local_user_name(),
            checkpoint_store=store,
            console=console_factory(services),
        )
    except (DeploymentError, ServeError, RoleMappingError, checkpoints.CheckpointKeyError) as exc:
        print(f"dmetl serve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
