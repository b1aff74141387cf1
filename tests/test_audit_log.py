"""The audit log in a real PostgreSQL: append-only for everyone, and `dmetl audit verify` names the
first position of an edited, deleted, reordered or cut log (tampering done the way a database
superuser could: with the append-only triggers switched off)."""

from __future__ import annotations

import json

import psycopg
import pytest

from etl_assets import audit
from etl_assets.audit import checkpoints
from etl_assets.audit.store import WRITER_ROLE
from etl_assets.cli import main

KEY = b"audit-test-key"
SEED = "11" * 32


@pytest.fixture
def audit_env(tmp_path, pg_url, monkeypatch):
    """A deployment whose audit log is in a fresh database, with keys and a checkpoint folder."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DM_POSTGRES_URL", pg_url)
    monkeypatch.setenv("DM_AUDIT_HMAC_KEY", KEY.decode())
    monkeypatch.setenv("DM_AUDIT_SIGNING_KEY", SEED)
    monkeypatch.setenv("DM_AUDIT_CHECKPOINTS", str(tmp_path / "checkpoints"))
    return tmp_path / "checkpoints"


def write_events(pg_url: str, n: int) -> None:
    with psycopg.connect(pg_url) as conn:
        for i in range(n):
            audit.record(
                conn, key=KEY, actor=f"user{i % 3}@example.org", role="task_manager",
                action=audit.Action.MUTATION, target=audit.Target(module="clinic", version=f"1.0.{i}"),
                detail={"operation": "launchRun", "i": i},
            )  # fmt: skip


def tamper(pg_url: str, *statements: str) -> None:
    """As a superuser who switches the append-only triggers off for the session."""
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET session_replication_role = replica")
        for sql in statements:
            conn.execute(sql)


def verify_cli(capsys) -> tuple[int, str]:
    code = main(["audit", "verify"])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_record_numbers_events_gaplessly_and_generated_columns_follow_the_body(pg_url):
    write_events(pg_url, 3)
    with psycopg.connect(pg_url) as conn:
        rows = audit.query(conn, user="user1@example.org")
        assert [r["seq"] for r in rows] == [2]
        assert rows[0]["module"] == "clinic" and rows[0]["version"] == "1.0.1"
        # inside the caller's transaction, the event rolls back with it: no gap is left
        with pytest.raises(RuntimeError), conn.transaction():
            audit.record(conn, key=KEY, actor="x", role="admin", action=audit.Action.APPROVAL)
            raise RuntimeError("the approval failed")
        assert audit.record(conn, key=KEY, actor="y", role="admin", action="version.approve") == 4
        assert audit.head(conn)[0] == 4


def test_unknown_actions_are_refused_with_the_vocabulary(pg_url):
    with psycopg.connect(pg_url) as conn, pytest.raises(ValueError, match="not a valid Action"):
        audit.record(conn, key=KEY, actor="x", role="admin", action="made.up")


def test_the_log_is_append_only_for_the_writer_role_and_for_its_owner(pg_url):
    write_events(pg_url, 2)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for sql in ("UPDATE dm_audit.events SET body = body", "DELETE FROM dm_audit.events",
                    "TRUNCATE dm_audit.events"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(sql)
        conn.execute(f"SET ROLE {WRITER_ROLE}")
        for sql in ("UPDATE dm_audit.events SET body = body", "DELETE FROM dm_audit.events",
                    "TRUNCATE dm_audit.events"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(sql)
        # ... while recording still works as that role
        assert audit.record(conn, key=KEY, actor="w", role="admin", action="audit.checkpoint") == 3


def test_verify_passes_on_an_untouched_log(audit_env, pg_url, capsys):
    write_events(pg_url, 6)
    assert main(["audit", "checkpoint"]) == 0
    code, out = verify_cli(capsys)
    assert code == 0, out
    assert "intact: 6 events, 1 signed checkpoints" in out


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        (["UPDATE dm_audit.events SET body = replace(body, 'user1', 'user9') WHERE seq = 5"],
         "position 5: edited"),
        (["DELETE FROM dm_audit.events WHERE seq = 3"], "position 3: deleted"),
        (["UPDATE dm_audit.events SET seq = 1000 WHERE seq = 4",
          "UPDATE dm_audit.events SET seq = 4 WHERE seq = 5",
          "UPDATE dm_audit.events SET seq = 5 WHERE seq = 1000"],
         "position 4: reordered: the row written at position 5 is now at 4"),
    ],
    ids=["edited", "deleted", "reordered"],
)  # fmt: skip
def test_verify_names_the_first_tampered_position(audit_env, pg_url, capsys, statements, expected):
    write_events(pg_url, 8)
    tamper(pg_url, *statements)
    code, out = verify_cli(capsys)
    assert code == 1
    assert expected in out


def test_verify_finds_a_cut_tail_from_the_signed_checkpoint(audit_env, pg_url, capsys):
    write_events(pg_url, 8)
    assert main(["audit", "checkpoint"]) == 0
    with psycopg.connect(pg_url) as conn:
        _, hash5 = conn.execute("SELECT seq, hash FROM dm_audit.events WHERE seq = 5").fetchone()
    # the tail is cut and the head row rewritten to match: the chain itself is consistent
    tamper(pg_url, "DELETE FROM dm_audit.events WHERE seq > 5",
           f"UPDATE dm_audit.head SET seq = 5, hash = '\\x{bytes(hash5).hex()}'")  # fmt: skip
    code, out = verify_cli(capsys)
    assert code == 1
    assert "position 6: truncated: the log ends at 5, but a checkpoint" in out


def test_a_forged_checkpoint_is_reported(audit_env, pg_url, capsys):
    write_events(pg_url, 3)
    assert main(["audit", "checkpoint"]) == 0
    (path,) = audit_env.glob("checkpoint-*.json")
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "seq": 2}))
    code, out = verify_cli(capsys)
    assert code == 1
    assert f"checkpoint: bad signature or format: {path.name}" in out


def test_list_and_show_print_what_happened(audit_env, pg_url, capsys):
    write_events(pg_url, 4)
    assert (
        main(["audit", "list", "--user", "user0@example.org", "--action", "graphql.mutation"]) == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["1", "4"]
    assert "clinic/1.0.3" in lines[1] and "launchRun" in lines[1]
    assert main(["audit", "show", "4"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["actor"] == "user0@example.org" and shown["detail"]["i"] == 3


def test_checkpoint_keys_must_be_ed25519():
    with pytest.raises(checkpoints.CheckpointKeyError, match="DM_AUDIT_SIGNING_KEY: expected"):
        checkpoints.signing_key(b"not a key")
