"""One version allocator for the CLI, the schedules and the sensors: concurrent triggers never get
the same version, and a version that is being run is not run a second time."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from etl_assets.cli import main
from etl_assets.metadata.loader import load_module
from etl_assets.orchestration.versions import VersionRefused, allocate
from resources import PostgresResource
from resources.deployment import SecretsResource
from schedules import build_schedule
from sensors import build_source_sensor
from tests.conftest import ROOT

SLOW_SCRIPT = """import json, sys, time
time.sleep(float(sys.argv[1]))
print(json.dumps([{"item_id": 9, "label": "late", "price": 1.0, "added_on": "2026-01-01"}]))
"""


def new_module(mods: Path, name: str = "shop", sleep: float | None = None) -> Path:
    assert main(["new", name, "--dir", str(mods)]) == 0
    folder = mods / name
    if sleep is not None:
        (folder / "scripts" / "extra_items.py").write_text(SLOW_SCRIPT)
        meta = folder / "module.yaml"
        text = meta.read_text().replace(
            "extract: {type: script, path: scripts/extra_items.py}",
            f'extract: {{type: script, path: scripts/extra_items.py, args: ["{sleep}"]}}',
        )
        meta.write_text(text)
    return folder


def cli_env(home: Path, mods: Path, pg_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DM_MODULES_DIR": str(mods),
        "DM_POSTGRES_URL": pg_url,
        "PYTHONPATH": str(ROOT),
    }


def dmetl(*args: str) -> list[str]:
    return [sys.executable, "-m", "etl_assets.cli", *args]


def test_ten_concurrent_runs_get_ten_versions(tmp_path, pg_url):
    mods, home = tmp_path / "mods", tmp_path / "home"
    new_module(mods)
    env = cli_env(home, mods, pg_url)
    procs = [
        subprocess.Popen(
            dmetl("run", "shop"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )  # fmt: skip
        for _ in range(10)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    versions = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert "Traceback" not in out + err, err[-2000:]
        match = re.search(r"^shop (\d+\.\d+\.\d+): succeeded", out, re.M)
        if match:
            versions.append(match[1])
        else:  # a refusal must say why, in one line
            assert proc.returncode != 0 and "refused:" in err, out[-1000:] + err[-2000:]
    assert len(versions) == len(set(versions)) >= 8, versions
    assert sorted(versions, key=lambda v: tuple(map(int, v.split(".")))) == [
        f"0.1.{i}" for i in range(1, len(versions) + 1)
    ]


def test_a_version_that_is_running_is_refused_with_the_run_named(tmp_path, pg_url):
    mods, home = tmp_path / "mods", tmp_path / "home"
    new_module(mods, sleep=20)
    env = cli_env(home, mods, pg_url)
    first = subprocess.Popen(dmetl("run", "shop", "--version", "0.2.0"), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.time() + 120
        second = None
        while time.time() < deadline:
            time.sleep(2)
            second = subprocess.run(dmetl("run", "shop", "--version", "0.2.0"), env=env,
                                    capture_output=True, text=True, timeout=300)  # fmt: skip
            if "refused" in second.stderr:
                break
        assert second is not None and second.returncode == 1, second and second.stderr
        match = re.search(
            r"shop 0\.2\.0 is already being run by run ([0-9a-f-]{36})", second.stderr
        )
        assert match, second.stderr
        out, _ = first.communicate(timeout=300)
        assert f"(run {match[1]})" in out  # the refusal named the run that was running
    finally:
        if first.poll() is None:
            first.kill()


def test_schedule_and_sensor_never_pick_the_same_version(modules_dir, pg_url):
    loaded = load_module(modules_dir / "clinic")
    # the source sensor reads secret-bearing sources (S3, Kafka, SFTP, PostgreSQL) too
    res = {"postgres": PostgresResource(url=pg_url), "secrets": SecretsResource()}
    schedule, sensor = build_schedule(loaded), build_source_sensor(loaded)
    with dg.instance_for_test() as instance:
        cursor = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=res))
        (modules_dir / "clinic" / "data" / "wards.csv").touch()
        os.utime(modules_dir / "clinic" / "data" / "wards.csv", (time.time() + 9, time.time() + 9))
        # the sensor allocates its version but adds the partition only when its result is
        # processed; a schedule tick in between must still not take the same number
        by_sensor = sensor(
            dg.build_sensor_context(instance=instance, cursor=cursor.cursor, resources=res)
        )
        by_schedule = schedule(
            dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=dt.datetime(2026, 11, 24, 2, tzinfo=dt.UTC),
                resources=res,
            )
        )
        assert by_sensor.run_requests[0].partition_key == "1.0.1"
        assert by_schedule.partition_key == "1.0.2"


def test_explicit_versions_must_be_versions(modules_dir, pg_url):
    loaded = load_module(modules_dir / "clinic")
    with dg.instance_for_test() as instance:
        with pytest.raises(VersionRefused, match="'9.9.9-get' is not a MAJOR.MINOR.PATCH version"):
            allocate(
                instance, PostgresResource(url=pg_url), loaded, trigger="cli", version="9.9.9-get"
            )
        assert (
            allocate(instance, PostgresResource(url=pg_url), loaded, trigger="cli", version="3.0.0")
            == "3.0.0"
        )
        # the next allocation goes after every version handed out, not only the partitions
        assert allocate(instance, PostgresResource(url=pg_url), loaded, trigger="cli") == "3.0.1"
