"""The `dmetl` command line: validate, new, run, versions, approve."""

from __future__ import annotations

import pytest

from etl_assets.cli import main
from tests.conftest import EXAMPLES, stop_embedded_postgres


def test_validate_examples(capsys):
    assert main(["validate", str(EXAMPLES)]) == 0
    assert "ok  clinic  3 tables, 4 sources" in capsys.readouterr().out


def test_validate_reports_errors_and_fails(tmp_path, capsys):
    assert main(["new", "shop", "--dir", str(tmp_path)]) == 0
    meta = tmp_path / "shop" / "module.yaml"
    meta.write_text(meta.read_text().replace("onViolation: clamp", "strategy: clamp"))
    assert main(["validate", str(tmp_path / "shop")]) == 1
    err = capsys.readouterr().err
    assert "shop/module.yaml: tables[0].columns[2].range.strategy: unknown key" in err
    meta.write_text(meta.read_text().replace("strategy: clamp", "max: 9"))
    assert main(["validate", str(tmp_path / "shop")]) == 1
    err = capsys.readouterr().err
    assert "tables[0].columns[2].range: a range needs onViolation (drop | clamp)" in err


def test_new_module_runs_and_publishes(tmp_path, dagster_home, pg_url, monkeypatch, capsys):
    monkeypatch.setenv("DM_POSTGRES_URL", pg_url)
    monkeypatch.setenv("DM_MODULES_DIR", str(tmp_path / "mods"))
    assert main(["new", "shop"]) == 0
    assert main(["run", "shop"]) == 0
    out = capsys.readouterr().out
    assert "shop 0.1.1: succeeded" in out
    assert "items" in out and "dm_shop.items" in out
    assert main(["run", "shop"]) == 0
    assert main(["versions", "shop"]) == 0
    out = capsys.readouterr().out
    assert out.index("0.1.2") < out.index("0.1.1")  # newest first


def test_upload_waits_for_approval(tmp_path, dagster_home, pg_url, monkeypatch, capsys):
    monkeypatch.setenv("DM_POSTGRES_URL", pg_url)
    monkeypatch.setenv("DM_MODULES_DIR", str(tmp_path))
    assert main(["new", "shop"]) == 0
    meta = tmp_path / "shop" / "module.yaml"
    meta.write_text(meta.read_text().replace("autoUpload: true", "autoUpload: false"))
    assert main(["run", "shop"]) == 0  # prepares the version; the upload job is separate
    capsys.readouterr()
    assert main(["versions", "shop"]) == 0
    assert "no published version yet" in capsys.readouterr().out

    import dagster as dg

    from resources.deployment import current, resources_for
    from tests.helpers import run_version

    res = resources_for(current())  # the same deployment as the CLI's
    instance = dg.DagsterInstance.get()
    result = run_version(tmp_path / "shop", "0.1.1", res, instance, job="shop_upload_job")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "waiting for approval" in failure.step_failure_data.error.message
    assert main(["approve", "shop", "0.1.9", "--by", "tm@example.org"]) == 1  # never prepared
    assert "shop 0.1.9 is not in the outbox" in capsys.readouterr().err
    assert main(["approve", "shop", "0.1.1", "--by", "tm@example.org", "--no-upload"]) == 0
    assert "dm_approved_uploads sensor runs shop_upload_job" in capsys.readouterr().out
    assert main(["versions", "shop"]) == 0
    assert "no published version yet" in capsys.readouterr().out
    # without --no-upload the upload runs at once through the instance: no daemon needed
    assert main(["approve", "shop", "0.1.1", "--by", "tm@example.org"]) == 0
    assert "shop 0.1.1: succeeded" in capsys.readouterr().out
    assert main(["versions", "shop"]) == 0
    assert "0.1.1" in capsys.readouterr().out
    uploads = instance.get_run_records(dg.RunsFilter(job_name="shop_upload_job"))
    assert uploads[0].dagster_run.tags["dm/trigger"] == "approval"


@pytest.mark.parametrize("cmd", [["run", "nope"]])
def test_unknown_module(cmd, tmp_path, dagster_home, monkeypatch, capsys):
    monkeypatch.setenv("DM_MODULES_DIR", str(tmp_path))
    assert main(cmd) == 1
    assert "no valid data module named 'nope'" in capsys.readouterr().err


def test_prod_refuses_to_start_without_postgres(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DM_DEPLOYMENT", "prod")
    monkeypatch.delenv("DM_POSTGRES_URL", raising=False)
    assert main(["versions", "clinic"]) == 2
    assert "DM_DEPLOYMENT=prod needs DM_POSTGRES_URL" in capsys.readouterr().err


def test_the_cli_says_when_it_uses_the_embedded_postgres(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DM_POSTGRES_URL", raising=False)
    monkeypatch.delenv("DM_DEPLOYMENT", raising=False)
    try:
        assert main(["versions", "clinic"]) == 0
    finally:
        stop_embedded_postgres(tmp_path / "home" / "pgdata")
    err = capsys.readouterr().err
    assert f"note: embedded PostgreSQL under {tmp_path / 'home' / 'pgdata'}" in err
    assert "(DM_POSTGRES_URL is unset)" in err
