"""Signed checkpoints of the audit log's head, kept outside the database.

A checkpoint is `(seq, hash, at)` signed with Ed25519. Whoever can rewrite the table can cut
its tail and the head row consistently, but not a signature made with a key the database never
sees: `verify` compares the log with the latest valid checkpoint and so finds a cut tail too.
Checkpoints go to a folder or an S3 prefix (`DM_AUDIT_CHECKPOINTS`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from etl_assets.audit.chain import canonical
from resources.stores import LocalStore, S3Store

PREFIX = "checkpoint-"


class CheckpointKeyError(ValueError):
    """A checkpoint key that cannot be read (names the variable and what was expected)."""


def signing_key(raw: bytes, variable: str = "DM_AUDIT_SIGNING_KEY") -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM, or from 64 hex digits (the 32-byte seed)."""
    text = raw.decode("utf-8", "replace").strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointKeyError(f"{variable}: the PEM key is not an Ed25519 private key")
        return key
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise CheckpointKeyError(
            f"{variable}: expected an Ed25519 private key as PEM or 64 hex digits"
        )
    return Ed25519PrivateKey.from_private_bytes(seed)


def verify_key(raw: bytes, variable: str = "DM_AUDIT_VERIFY_KEY") -> Ed25519PublicKey:
    """An Ed25519 public key from PEM, or from 64 hex digits (the raw 32 bytes)."""
    text = raw.decode("utf-8", "replace").strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise CheckpointKeyError(f"{variable}: the PEM key is not an Ed25519 public key")
        return key
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError:
        raise CheckpointKeyError(
            f"{variable}: expected an Ed25519 public key as PEM or 64 hex digits"
        ) from None


def public_hex(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def store_for(location: str, s3_client: Any = None) -> LocalStore | S3Store:
    """The folder or `s3://bucket/prefix` that holds checkpoints."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://") :].partition("/")
        if s3_client is None:
            raise ValueError(f"checkpoints at {location} need an S3 client")
        return S3Store(s3_client, bucket, prefix or "audit-checkpoints")
    return LocalStore(Path(location))


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: bytes
    at: str
    name: str = ""

    def statement(self) -> bytes:
        return canonical({"seq": self.seq, "hash": self.hash.hex(), "at": self.at}).encode()


def write(store: LocalStore | S3Store, key: Ed25519PrivateKey, seq: int, digest: bytes) -> str:
    """Sign and store a checkpoint of `(seq, digest)`; returns where it went."""
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    cp = Checkpoint(seq, digest, at)
    signature = base64.b64encode(key.sign(cp.statement())).decode()
    doc = {"seq": seq, "hash": digest.hex(), "at": at, "signature": signature}
    name = f"{PREFIX}{seq:012d}.json"
    store.write_bytes(name, json.dumps(doc, indent=1).encode())
    return store.uri(name)


@dataclass(frozen=True)
class Loaded:
    valid: list[Checkpoint]
    invalid: list[str]  # names of checkpoints whose signature or format is wrong


def load(store: LocalStore | S3Store, key: Ed25519PublicKey) -> Loaded:
    """Every checkpoint in the store, split into those with a valid signature and the rest."""
    valid, invalid = [], []
    for name in store.list(""):
        if not (name.startswith(PREFIX) and name.endswith(".json")):
            continue
        try:
            doc = json.loads(store.read_bytes(name))
            cp = Checkpoint(int(doc["seq"]), bytes.fromhex(doc["hash"]), str(doc["at"]), name)
            key.verify(base64.b64decode(doc["signature"]), cp.statement())
        except (InvalidSignature, KeyError, ValueError, TypeError):
            invalid.append(name)
            continue
        valid.append(cp)
    return Loaded(sorted(valid, key=lambda c: c.seq), invalid)


def fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]
