"""Starting and stopping the real services a test run needs, as child processes in their own groups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import connection

if TYPE_CHECKING:
    from apps.jobs.models import Job


class Service:
    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own group: stop() takes its children too
        )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                if ready():
                    return
            except Exception:  # noqa: BLE001, S110 - not ready yet
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} was not {what} after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, grace: float = 10.0) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def database_url_of_test_db() -> str:
    """The URL of the database the tests use, for a child process (the worker) to open the same one."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    if connection.vendor == "postgresql":
        auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
        return f"postgres://{auth}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"
    raise RuntimeError(f"No URL form for the {connection.vendor} test database.")


def mlflow_get(uri: str, endpoint: str, **query: str) -> dict:
    """GET one of the MLflow server's REST endpoints, e.g. mlflow_get(uri, "runs/get", run_id=...)."""
    import json
    import urllib.parse
    import urllib.request

    request = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}", headers=mlflow_auth()
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def mlflow_auth() -> dict[str, str]:
    """The app's Basic credentials for the tracking server (apps/settings.py puts them in the environment):
    the tests read MLflow directly, as the workers do; users go through the /mlflow/ proxy."""
    import base64
    import os

    user, password = os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def mlflow_runs(uri: str, experiment: str) -> list[dict]:
    """Every run of an experiment, through the REST API (runs/search is a POST)."""
    import json
    import urllib.request

    experiment_id = mlflow_get(uri, "experiments/get-by-name", experiment_name=experiment)["experiment"][
        "experiment_id"
    ]
    request = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/runs/search", data=json.dumps({"experiment_ids": [experiment_id]}).encode(),
        headers={"Content-Type": "application/json", **mlflow_auth()},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.loads(response.read()).get("runs", []))


def wait_for_job(job: Job, timeout: float = 120) -> Job:
    """The job once it has ended (its row refreshed), or an AssertionError with its log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.ended:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job.pk} still {job.status}:\n{job.log_tail[-2000:]}")
