"""S3 through dagster-aws's `S3Resource`: a client per named connection, endpoint configurable
(moto, MinIO), with botocore's exponential-backoff retries plus a connection check."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, EndpointConnectionError

from resources.retry import with_retries

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource


def s3_resource_for(conn: Any) -> S3Resource:
    """From a resolved connection of type s3 (its url is the endpoint)."""
    from dagster_aws.s3 import S3Resource  # imported when used: boto3 and dagster-aws, for S3 only

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


def list_etags(client: Any, bucket: str, prefix: str, pattern: str = "*") -> dict[str, str]:
    """Key -> ETag of the objects `list_keys` would read (a change of either is a new object)."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            rest = key[len(prefix) :].lstrip("/")
            if not key.endswith("/") and fnmatch.fnmatch(rest, pattern):
                found[key] = obj.get("ETag", "")
    return found
