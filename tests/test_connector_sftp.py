"""SFTP source against a paramiko SFTP server on loopback: globs, formats, host-key checking."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from etl_assets.connections import ResolvedConnection
from resources.sftp import SftpRefused, SftpResource
from tests import servers
from tests.helpers import CONTEXT, run_version, write_module

pytestmark = pytest.mark.integration
sftp_server = servers.sftp_server  # paramiko SFTP server in a thread


def _doc(checking: dict) -> dict:
    return {
        "@context": CONTEXT,
        "@type": "DataModule",
        "name": "drop_mod",
        "version": "1.0.0",
        "autoUpload": True,
        "retry": {"maxRetries": 0},
        "connections": [
            {
                "name": "partner",
                "type": "sftp",
                "urlEnv": "DM_TEST_SFTP_URL",
                "options": checking,
                "secretEnv": {"password": "DM_TEST_SFTP_PASSWORD"},
            }
        ],
        "tables": [
            {
                "name": "orders",
                "primaryKey": ["order_id"],
                "onKeyConflict": "dropAll",
                "columns": [
                    {"name": "order_id", "dataType": "integer", "nullable": False},
                    {"name": "amount", "dataType": "number"},
                ],
            }
        ],
        "collection": [
            {
                "table": "orders",
                "source": "partner",
                "extract": {"type": "sftp", "connection": "partner", "path": "/drop/orders_*"},
            }
        ],
    }


@pytest.fixture
def drop(sftp_server, monkeypatch):
    folder = sftp_server.root / "drop"
    folder.mkdir()
    (folder / "orders_1.csv").write_text("order_id,amount\n1,10.5\n2,20\n")
    (folder / "orders_2.jsonl").write_text('{"order_id": 3, "amount": 7}\n')
    pd.DataFrame({"order_id": [4, 5], "amount": [1.0, 2.0]}).to_parquet(folder / "orders_3.parquet")
    (folder / "other.csv").write_text("order_id,amount\n99,0\n")
    monkeypatch.setenv("DM_TEST_SFTP_URL", f"sftp://etl@127.0.0.1:{sftp_server.port}")
    monkeypatch.setenv("DM_TEST_SFTP_PASSWORD", sftp_server.password)
    return sftp_server


def test_glob_of_mixed_formats_with_pinned_host_key(drop, tmp_path, resources):
    key = drop.host_key
    pinned = {"host_key": f"{key.get_name()} {key.get_base64()}"}
    folder = write_module(tmp_path / "drop_mod", _doc(pinned))
    result = run_version(
        folder, "1.0.0", resources, dg.DagsterInstance.ephemeral(), job="drop_mod_prepare_job"
    )
    assert result.success
    out = resources["outbox"].read_table("drop_mod", "1.0.0", "orders")
    assert sorted(out["order_id"].tolist()) == [1, 2, 3, 4, 5]


def test_unknown_host_key_is_refused_by_default(drop, tmp_path):
    conn = ResolvedConnection(
        name="partner",
        type="sftp",
        url=f"sftp://etl@127.0.0.1:{drop.port}",
        settings={"password": drop.password, "known_hosts": str(tmp_path / "empty_known_hosts")},
        secret_keys=frozenset({"password"}),
    )
    (tmp_path / "empty_known_hosts").write_text("")
    with pytest.raises(SftpRefused, match="'partner'.*host key is unknown") as err:
        with SftpResource.from_connection(conn).open():
            pass
    assert drop.password not in str(err.value)


def test_wrong_password_names_connection_not_password(drop):
    res = SftpResource(
        name="partner",
        host="127.0.0.1",
        port=drop.port,
        username="etl",
        password="wrong-pw-123",
        host_key_checking="accept-new",
    )
    with pytest.raises(SftpRefused, match="'partner'.*authentication failed") as err:
        with res.open():
            pass
    assert "wrong-pw-123" not in str(err.value)


def test_private_key_login(drop):
    import io

    pem = io.StringIO()
    drop.client_key.write_private_key(pem)
    res = SftpResource(
        name="partner",
        host="127.0.0.1",
        port=drop.port,
        username="etl",
        private_key=pem.getvalue(),
        host_key_checking="accept-new",
    )
    with res.open() as sftp:
        assert "orders_1.csv" in sftp.listdir("/drop")
