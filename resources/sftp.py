"""SFTP (paramiko): password or key auth, configurable host-key checking, connection retries."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import dagster as dg
import paramiko
from pydantic import Field

from resources.retry import with_retries


class SftpRefused(RuntimeError):
    """The server refused us (host key, credentials): not retried."""


class SftpResource(dg.ConfigurableResource):
    """An SFTP server. Host keys: `host_key` pinned ("ssh-ed25519 AAAA..."), else `known_hosts`
    (default: the system's); `host_key_checking` strict (default), accept-new, or no."""

    name: str = Field(default="sftp", description="the connection's name, used in errors")
    host: str
    port: int = 22
    username: str
    password: str | None = Field(default=None, description="never logged")
    private_key: str | None = Field(default=None, description="PEM text; never logged")
    host_key: str | None = None
    known_hosts: str | None = None
    host_key_checking: str = Field(default="strict", pattern="^(strict|accept-new|no)$")
    connect_retries: int = Field(default=3, ge=0)
    connect_backoff_seconds: float = Field(default=0.5, ge=0)
    timeout_seconds: float = Field(default=15, gt=0)

    @classmethod
    def from_connection(cls, conn: Any) -> SftpResource:
        """From an `etl_assets.connections.ResolvedConnection` of type sftp (url sftp://u@h:p)."""
        s = dict(conn.settings)
        if conn.url:
            u = urlparse(conn.url)
            s.setdefault("host", u.hostname)
            s.setdefault("port", u.port or 22)
            s.setdefault("username", u.username)
        keys = ("port", "password", "private_key", "host_key", "known_hosts",
                "host_key_checking", "connect_retries", "timeout_seconds")  # fmt: skip
        return cls(
            name=conn.name,
            host=s.get("host") or conn.require("host"),
            username=s.get("username") or conn.require("username"),
            **{k: s[k] for k in keys if s.get(k) is not None},
        )

    def _client(self):
        client = paramiko.SSHClient()
        if self.host_key:
            kind, _, b64 = self.host_key.strip().partition(" ")
            key = paramiko.PKey.from_type_string(kind, base64.b64decode(b64.split()[0]))
            name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
            client.get_host_keys().add(name, kind, key)
        elif self.known_hosts:
            client.load_host_keys(self.known_hosts)
        elif self.host_key_checking != "no":
            client.load_system_host_keys()
        policy = {
            "strict": paramiko.RejectPolicy(),
            "accept-new": paramiko.AutoAddPolicy(),
            "no": paramiko.AutoAddPolicy(),
        }[self.host_key_checking]
        client.set_missing_host_key_policy(policy)
        return client

    def _scrub(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text

    @contextmanager
    def open(self) -> Iterator[Any]:
        """An SFTP session; unreachable servers are retried, bad host keys and auth are not."""

        client = self._client()
        pkey = _load_private_key(self.private_key, self.name) if self.private_key else None
        where = f"SFTP connection {self.name!r} ({self.username}@{self.host}:{self.port})"

        def connect() -> None:
            client.connect(
                self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                pkey=pkey,
                timeout=self.timeout_seconds,
                allow_agent=False,
                look_for_keys=False,
            )

        try:
            _connect_with_retries(connect, where, self)
        except Exception:
            client.close()
            raise
        try:
            sftp = client.open_sftp()
            try:
                yield sftp
            finally:
                sftp.close()
        finally:
            client.close()


def _connect_with_retries(connect, where: str, res: SftpResource) -> None:
    """Retry network failures only; an unknown host key or bad credentials fail at once."""

    def attempt() -> None:
        try:
            connect()
        except paramiko.AuthenticationException:
            raise SftpRefused(f"{where}: authentication failed") from None
        except paramiko.BadHostKeyException:
            raise SftpRefused(f"{where}: the server's host key does not match") from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise SftpRefused(
                    f"{where}: the server's host key is unknown; pin it with options.host_key,"
                    " give options.known_hosts, or set host_key_checking accept-new"
                ) from None
            raise

    with_retries(
        attempt,
        what=where,
        retries=res.connect_retries,
        backoff_seconds=res.connect_backoff_seconds,
        retry_on=(OSError, paramiko.SSHException),
        scrub=res._scrub,
    )


def _load_private_key(text: str, name: str):
    """A private key of any type paramiko knows (Ed25519, ECDSA, RSA), from its PEM text."""
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise SftpRefused(
        f"SFTP connection {name!r}: the private key is not an Ed25519, ECDSA or RSA key"
    )
