"""The outbox on S3 (moto on loopback, through dagster-aws): a whole version prepared and published."""

from __future__ import annotations

import hashlib
import io

import dagster as dg
import psycopg
import pyarrow.parquet as pq
import pytest

from resources import OutboxResource
from tests import servers
from tests.conftest import local_resources
from tests.helpers import run_version

pytestmark = pytest.mark.integration
s3_endpoint = servers.s3_endpoint


@pytest.fixture
def s3_outbox(s3_endpoint, monkeypatch):
    for k, v in servers.S3_ENV.items():
        monkeypatch.setenv(k, v)
    outbox = OutboxResource(root="s3://dm-outbox/prepared", s3_endpoint_url=s3_endpoint)
    outbox._store().client.create_bucket(Bucket="dm-outbox")
    return outbox


def test_clinic_version_through_an_s3_outbox(s3_outbox, modules_dir, tmp_path, pg_url):
    resources = {**local_resources(tmp_path, pg_url), "outbox": s3_outbox}
    with dg.instance_for_test() as instance:
        result = run_version(modules_dir / "clinic", "1.0.1", resources, instance)
    assert result.success
    assert s3_outbox.versions("clinic") == ["1.0.1"]  # not the current.json pointer beside it
    pointer = s3_outbox.read_current("clinic")
    assert (pointer["version"], pointer["uri"]) == (
        "1.0.1",
        s3_outbox.version_uri("clinic", "1.0.1"),
    )
    assert s3_outbox.has_table("clinic", "1.0.1", "patients")
    assert s3_outbox.read_json("clinic", "1.0.1", "datamodule.jsonld")["version"] == "1.0.1"
    croissant = s3_outbox.read_json("clinic", "1.0.1", "croissant.json")
    # Parquet beside the Croissant file, named relative to it: the folder loads wherever it is
    urls = {d["contentUrl"] for d in croissant["distribution"]}
    assert urls == {"wards.parquet", "patients.parquet", "visits.parquet"}
    assert croissant["url"] == "s3://dm-outbox/prepared/published/clinic/1.0.1"
    # the zones are separate prefixes, so a bucket policy can tell them apart
    keys = {
        o["Key"] for o in s3_outbox._store().client.list_objects_v2(Bucket="dm-outbox")["Contents"]
    }
    assert any(k.startswith("prepared/restricted/clinic/1.0.1/quarantine/") for k in keys)
    assert all(k.startswith(("prepared/published/", "prepared/restricted/")) for k in keys)
    quarantine = s3_outbox.read_quarantine("clinic", "1.0.1")
    assert (quarantine["reason"] == "dangling_reference").any()
    published = s3_outbox.read_table("clinic", "1.0.1", "patients")
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT count(*) FROM dm_clinic.patients").fetchone()[0]
    assert rows == len(published)
    # footer reads and hashes do not fetch the table into memory, and agree with the bytes
    data = s3_outbox._store().read_bytes(s3_outbox._rel("clinic", "1.0.1", "patients.parquet"))
    assert s3_outbox.table_rows("clinic", "1.0.1", "patients") == len(published)
    assert s3_outbox.table_schema("clinic", "1.0.1", "patients") == pq.read_schema(io.BytesIO(data))
    assert s3_outbox.table_sha256("clinic", "1.0.1", "patients") == hashlib.sha256(data).hexdigest()
    s3_outbox.delete_version("clinic", "1.0.1")
    assert s3_outbox.versions("clinic") == []
