"""The deployment's S3 settings (`DM_S3_*`), as variable names: values stay in the environment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from resources.deployment.environment import Deployment
from resources.deployment.values import env_var_or_none

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource

S3_VARIABLES = {
    "endpoint_url": "DM_S3_ENDPOINT_URL",
    "region_name": "DM_S3_REGION",
    "aws_access_key_id": "DM_S3_ACCESS_KEY_ID",
    "aws_secret_access_key": "DM_S3_SECRET_ACCESS_KEY",
}


def s3_resource(deployment: Deployment) -> S3Resource:
    """dagster-aws's S3 resource with the deployment's `DM_S3_*` settings (EnvVars resolved)."""
    from dagster_aws.s3 import S3Resource  # imported when used: boto3 and dagster-aws, for S3 only

    kwargs = {
        name: env_var_or_none(var, deployment.s3_settings.get(name, False))
        for name, var in S3_VARIABLES.items()
    }
    resource = S3Resource(max_attempts=5, **{k: v for k, v in kwargs.items() if v is not None})
    return resource.process_config_and_initialize()
