"""`resources_for`: a deployment mapped to the resource dictionary the Definitions and the CLI
both use."""

from __future__ import annotations

import dagster as dg

from resources.alerts import AlertsResource
from resources.deployment.environment import Deployment
from resources.deployment.policy import GovernanceResource, PrivacyResource
from resources.deployment.s3 import S3_VARIABLES
from resources.deployment.secret_values import SecretsResource
from resources.deployment.values import env_var_or_none
from resources.io_manager import IO_MANAGER_KEY, ParquetIOManager
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource


def resources_for(deployment: Deployment) -> dict[str, object]:
    """The resources of a deployment; secrets stay `EnvVar`s, read where the run executes."""
    roles = {
        "consumer_role": deployment.consumer_role,
        "data_manager_role": deployment.data_manager_role,
    }
    postgres = (
        PostgresResource(url=dg.EnvVar("DM_POSTGRES_URL"), **roles)
        if deployment.postgres_url_set
        else PostgresResource(embedded_dir=str(deployment.dagster_home / "pgdata"), **roles)
    )
    s3 = {
        f"s3_{name}": env_var_or_none(var, deployment.s3_settings.get(name, False))
        for name, var in S3_VARIABLES.items()
    }
    return {
        "postgres": postgres,
        "outbox": OutboxResource(
            root=deployment.outbox_root, **{k: v for k, v in s3.items() if v is not None}
        ),
        "secrets": SecretsResource(
            generate_missing_keys_in=str(deployment.dagster_home / "secrets")
            if deployment.local
            else None,
            mask_env=list(deployment.mask_env),
        ),
        IO_MANAGER_KEY: ParquetIOManager(
            base_dir=deployment.storage_root, batch_rows=deployment.batch_rows
        ),
        "privacy": PrivacyResource(restricted_previews=deployment.restricted_previews),
        "governance": GovernanceResource(enabled=deployment.governance),
        "alerts": AlertsResource(
            urls=env_var_or_none("DM_ALERT_URLS", deployment.alert_urls_set),
            base_url=deployment.alert_base_url,
            kafka_topic=deployment.alert_kafka_topic,
            on_publish=deployment.alert_on_publish,
        ),
    }
