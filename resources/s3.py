"""S3 through dagster-aws's `S3Resource`: a client per named connection, endpoint configurable
(moto, MinIO), with botocore's exponential-backoff retries plus a connection check."""

from __future__ import annotations

import fnmatch
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from resources.retry import with_retries


def s3_resource_from_env() -> S3Resource:
    """The deployment's S3: `DM_S3_ENDPOINT_URL`, `DM_S3_REGION` and AWS credentials."""
    import os

    kw: dict[str, Any] = {"max_attempts": 5}
    if os.environ.get("DM_S3_ENDPOINT_URL"):
        kw["endpoint_url"] = dg.EnvVar("DM_S3_ENDPOINT_URL")
    if os.environ.get("DM_S3_REGION"):
        kw["region_name"] = dg.EnvVar("DM_S3_REGION")
    if os.environ.get("DM_S3_ACCESS_KEY_ID"):
        kw["aws_access_key_id"] = dg.EnvVar("DM_S3_ACCESS_KEY_ID")
        kw["aws_secret_access_key"] = dg.EnvVar("DM_S3_SECRET_ACCESS_KEY")
    return S3Resource(**kw)


def s3_resource_for(conn: Any) -> S3Resource:
    """From an `etl_assets.connections.ResolvedConnection` of type s3 (url = endpoint)."""
    s = conn.settings
    return S3Resource(
        endpoint_url=conn.url or s.get("endpoint_url"),
        region_name=s.get("region_name") or s.get("region"),
        aws_access_key_id=s.get("aws_access_key_id") or s.get("access_key_id"),
        aws_secret_access_key=s.get("aws_secret_access_key") or s.get("secret_access_key"),
        max_attempts=int(s.get("max_attempts", 5)),
    )


def checked_client(resource: S3Resource, name: str, bucket: str, retries: int = 3) -> Any:
    """A client whose bucket answered; unreachable endpoints are retried with backoff."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    client = resource.get_client()

    def check() -> None:
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise PermissionError(
                f"S3 connection {name!r}: bucket {bucket!r} is not accessible ({code})"
            ) from None

    with_retries(
        check,
        what=f"S3 connection {name!r} ({resource.endpoint_url or 'AWS'})",
        retries=retries,
        backoff_seconds=0.5,
        retry_on=(EndpointConnectionError,),
    )
    return client


def list_keys(client: Any, bucket: str, prefix: str, pattern: str = "*") -> list[str]:
    """Keys under `prefix` whose remainder (after the prefix) matches the glob `pattern`."""
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            rest = key[len(prefix) :].lstrip("/")
            if not key.endswith("/") and fnmatch.fnmatch(rest, pattern):
                keys.append(key)
    return sorted(keys)
