"""Launched runs against `dmetl run`: one version of each example module started the way the UI,
the schedules and the sensors start it (GraphQL `launchRun` on a running webserver, the daemon
dequeuing it, the instance's run launcher starting a run worker) beside `dmetl run` of the same
job, alternating, medians.

Contenders: `dmetl run` (in process), launched with the deployment's default executor (`auto`,
which is in process for the examples), and launched with `multiprocess` (a process per step,
forked from a server that has the code location imported). Launched times run from the
`launchRun` request to the run's end, so they include the queue, the run worker's start and
its loading of the code location.

    python bench/launch.py [--quick] [--rounds 3] [--modules clinic,staff_survey]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fresh_database  # noqa: E402

LAUNCH = """
mutation($selector: JobOrPipelineSelector!, $tags: [ExecutionTag!]) {
  launchRun(executionParams: {selector: $selector, executionMetadata: {tags: $tags}}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime } } }"""
DONE = {"SUCCESS", "FAILURE", "CANCELED"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Deployment:
    """A local deployment in a temporary DAGSTER_HOME: webserver and daemon for `executor`."""

    def __init__(self, work: Path, url: str, executor: str):
        self.home = work / f"home_{executor}"
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        shutil.copy(ROOT / "dagster.yaml", self.home / "dagster.yaml")
        self.env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "DM_MODULES_DIR": str(ROOT / "datamodules"),
            "DM_POSTGRES_URL": url,
            "DM_OUTBOX_ROOT": str(self.home / "outbox"),
            "DM_STORAGE_ROOT": str(self.home / "steps"),
            "DM_EXECUTOR": executor,
            "PYTHONPATH": str(ROOT),
        }
        self.port = _free_port()
        bin_dir = Path(sys.executable).parent
        workspace = ["-w", str(ROOT / "workspace.yaml")]
        self.procs = [
            subprocess.Popen(
                [str(bin_dir / "dagster-webserver"), *workspace, "-h", "127.0.0.1",
                 "-p", str(self.port)],
                env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [str(bin_dir / "dagster-daemon"), "run", *workspace],
                env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
        ]  # fmt: skip
        self.graphql = f"http://127.0.0.1:{self.port}/graphql"
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/server_info", timeout=2).ok:
                    return
            except requests.RequestException:
                time.sleep(0.5)
        raise RuntimeError("the webserver did not start")

    def query(self, text: str, variables: dict) -> dict:
        answer = requests.post(
            self.graphql, json={"query": text, "variables": variables}, timeout=60
        )
        answer.raise_for_status()
        body = answer.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def allocate(self, module: str) -> tuple[str, str]:
        """A new version of `module` through the product's allocator, and the job to run."""
        code = (
            "import sys\n"
            "from etl_assets.cli.session import Session\n"
            "from etl_assets.definitions import load_catalog\n"
            "from etl_assets.orchestration.jobs import triggered_job_name\n"
            "from etl_assets.orchestration.versions import allocate\n"
            "s = Session()\n"
            f"m = load_catalog(s.deployment.modules_dir, only={module!r}).module({module!r})\n"
            "loaded = m.definitions.loaded\n"
            "v = allocate(s.instance, s.postgres, loaded, trigger='bench')\n"
            "print(v, triggered_job_name(m.name, loaded.model.autoUpload))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], env=self.env, cwd=ROOT,
                             capture_output=True, text=True, check=True)  # fmt: skip
        version, job = out.stdout.split()[-2:]
        return version, job

    def launched(self, module: str) -> float:
        version, job = self.allocate(module)
        selector = {"repositoryLocationName": "datamodule_etl", "repositoryName": "__repository__",
                    "jobName": job}  # fmt: skip
        started = time.perf_counter()
        answer = self.query(
            LAUNCH, {"selector": selector, "tags": [{"key": "dagster/partition", "value": version}]}
        )
        result = answer["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launchRun: {result}")
        run_id = result["run"]["runId"]
        while True:
            run = self.query(RUN, {"id": run_id})["runOrError"]
            if run.get("status") in DONE:
                break
            time.sleep(0.2)
        wall = time.perf_counter() - started
        if run["status"] != "SUCCESS":
            raise RuntimeError(f"{module} {version}: the launched run ended {run['status']}")
        return wall

    def dmetl(self, module: str) -> float:
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "etl_assets.cli", "run", module],
                             env=self.env, cwd=ROOT, capture_output=True, text=True)  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(
                f"dmetl run {module} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
            )
        return time.perf_counter() - started

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one round, clinic only")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--modules", default=None)
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    modules = (args.modules or ("clinic" if args.quick else "clinic,staff_survey")).split(",")
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="dm_bench_launch_") as tmp, fresh_database() as url:
        deployments = {
            "auto": Deployment(Path(tmp), url, "auto"),
            "multiprocess": Deployment(Path(tmp), url, "multiprocess"),
        }
        try:
            for r in range(rounds):
                plan = [("dmetl_run", "auto"), ("launched_auto", "auto"),
                        ("launched_multiprocess", "multiprocess")]  # fmt: skip
                if r % 2:
                    plan.reverse()
                for module in modules:
                    for name, executor in plan:
                        d = deployments[executor]
                        seconds = d.dmetl(module) if name == "dmetl_run" else d.launched(module)
                        times[(module, name)].append(seconds)
                        print(f"  round {r + 1} {module:<13} {name:<22} {seconds:6.1f} s",
                              flush=True)  # fmt: skip
        finally:
            for d in deployments.values():
                d.close()
    summary: dict = {"rounds": rounds}
    print(f"\n{'module':<13} {'contender':<22} {'median s':>9} {'vs dmetl run':>13}")
    for module in modules:
        base = statistics.median(times[(module, "dmetl_run")])
        entry = {}
        for name in ("dmetl_run", "launched_auto", "launched_multiprocess"):
            med = statistics.median(times[(module, name)])
            entry[f"{name}_s"] = round(med, 2)
            entry[f"{name}_ratio"] = round(med / base, 2)
            print(f"{module:<13} {name:<22} {med:>9.2f} {med / base:>12.2f}x")
        summary[module] = entry
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
