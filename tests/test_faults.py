"""`make run` under fire: its own supervisor, the real Procfile and a real job, while the trainer, Redis
and the web process are SIGKILLed in turn. Each comes back by itself, the job resumes at once (not after
the lease) and finishes exactly once, and MLflow and the job's chart hold one point per step."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from django.conf import settings

from tests.harness import mlflow_get, python
from workers.training import tiny
from workers.training.folder import JobFolder

pytestmark = pytest.mark.services
STEPS, SAVE_EVERY = 24, 4

CREATE_JOB = """
from django.contrib.auth import get_user_model
from apps.jobs.services import job_create
from apps.projects.services import project_create
user = get_user_model().objects.create_user("faults", password="not-used-here-1")
project = project_create(user=user, name="Faults")
spec = {"technique": "sft", "model": MODEL, "dataset": DATASET,
        "training": {"method": "lora", "max_steps": STEPS, "batch_size": 2, "save_steps": SAVE_EVERY}}
print("JOB", job_create(project=project, user=user, name="under fire", spec=spec).pk)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


class Run:
    """The launcher's process, its output, and its database, read the way the job page reads it."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, db: Path) -> None:
        self.proc, self.log, self.db = proc, log, db

    def wait(self, check: Callable[[], Any], what: str, timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the launcher exited:\n{self.output()}"
            try:
                last = check()
                if last:
                    return last
            except (OSError, sqlite3.Error, redis.RedisError) as exc:
                last = exc
            time.sleep(0.25)
        raise AssertionError(f"{what} not reached in {timeout} s (last: {last!r}):\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def job(self, pk: int) -> dict[str, Any]:
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM jobs_job WHERE id = ?", (pk,)).fetchone()
        return dict(row)

    def processes(self, needle: str) -> list[psutil.Process]:
        """The supervisor's children whose command line holds `needle` (the program itself: it is exec'd)."""
        found = []
        for child in psutil.Process(self.proc.pid).children():
            with contextlib.suppress(psutil.Error):
                if needle in " ".join(child.cmdline()):
                    found.append(child)
        return found

    def kill(self, name: str, needle: str) -> None:
        """SIGKILL one of the processes `name` (`web` may run as web, web2, ...) and wait for the supervisor
        to say so and start it again, so that as many run as before and the killed one is not among them."""
        running = self.processes(needle)
        assert running, f"no {name} running"
        victim = running[-1]
        victim.send_signal(signal.SIGKILL)
        # The whole log: the tail that output() shows can be all traceback (the worker's, when redis
        # went) within a quarter of a second of the supervisor's line.
        said = re.compile(rf"\| {name}\d* exited with code -9 \(SIGKILL\); restarting in 1 s, restart 1")
        self.wait(
            lambda: said.search(self.log.read_text(errors="replace")),
            f"the supervisor noticing {name}'s death",
            30,
        )
        self.wait(
            lambda: (
                len(now := self.processes(needle)) == len(running) and victim.pid not in {p.pid for p in now}
            ),
            f"{name} started again",
            30,
        )


def test_the_trainer_redis_and_the_web_process_killed_in_turn_come_back_and_the_job_finishes_once(
    tmp_path, tiny_model
):
    web_port, mlflow_port = _free_port(), _free_port()
    data = tmp_path / "data"
    env = {
        k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "MLFLOW_TRACKING_URI", "DATABASE_URL"}
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "apps.settings",
        "ATELIER_DATA_DIR": str(data),
        "ATELIER_PORT": str(web_port),
        "ATELIER_MLFLOW_PORT": str(mlflow_port),
        "ATELIER_HEARTBEAT_SECONDS": "1",
        # `make run`'s lease and reaper (the test settings shorten both): the job resumes long before the
        # lease could run out, so that is the restarted worker's doing.
        "ATELIER_JOB_LEASE_SECONDS": "60",
        "ATELIER_REAPER_SECONDS": "15",
        # One thread for torch: on a busy machine two spinning threads made each tiny step take seconds.
        "OMP_NUM_THREADS": "1",
    }
    manage = str(Path(settings.BASE_DIR) / "manage.py")
    subprocess.run([sys.executable, manage, "migrate", "-v", "0"], env=env, check=True)
    log = tmp_path / "launcher.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            python("-m", "apps.launcher", "start"),
            cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    run = Run(proc, log, data / "atelier.sqlite3")
    web = f"http://127.0.0.1:{web_port}/accounts/login/"
    mlflow_uri = f"http://127.0.0.1:{mlflow_port}"
    broker = redis.Redis(unix_socket_path=str(data / "redis" / "redis.sock"), socket_timeout=2)
    try:
        run.wait(lambda: _status(f"http://127.0.0.1:{web_port}/healthz") == 200, "every service up")
        script = f"MODEL, DATASET, STEPS, SAVE_EVERY = {str(tiny_model / 'partial')!r}, "
        script += f"{str(tiny.DEMO / 'reverse' / 'sft.jsonl')!r}, {STEPS}, {SAVE_EVERY}\n" + CREATE_JOB
        created = subprocess.run(
            [sys.executable, manage, "shell", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        pk = int(created.stdout.split("JOB")[-1])

        # The trainer (its Celery worker, whose pool child runs the training process) dies mid-job.
        first = run.wait(lambda: (j := run.job(pk))["step"] >= SAVE_EVERY + 2 and j, "a checkpoint or two")
        run.kill("trainer", "-Q train-cpu")
        # The restarted worker gives the job back and takes it again: a second attempt, long before the
        # 60 s lease would have run out (the reaper's way).
        run.wait(lambda: run.job(pk)["attempts"] == 2, "the job claimed again")
        said = log.read_text(errors="replace")
        assert "(restarted); queued to resume" in said and "(lease expired)" not in said

        def resumed_from() -> int | None:
            [events_file] = (data / "jobs").glob(f"{pk}-*/{JobFolder.EVENTS}")
            lines = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
            return next((e["step"] for e in lines if e["event"] == "resumed"), None)

        resumed = run.wait(resumed_from, "the job resumed from a checkpoint")
        assert resumed > 0 and resumed >= first["step"] - SAVE_EVERY  # at most one interval redone

        run.kill("redis", "redis-server")
        run.wait(broker.ping, "Redis answering")
        run.kill("web", "apps.launcher web")
        run.wait(lambda: _status(web) == 200, "the web answering")

        job = run.wait(lambda: (j := run.job(pk))["finished_at"] and j, "the job ending", 400)
        assert job["status"] == "succeeded", (job["error"], job["log_tail"][-2000:])
        assert job["attempts"] == 2 and job["step"] == STEPS
        [events_file] = (data / "jobs").glob(f"{pk}-*/{JobFolder.EVENTS}")
        events = [json.loads(line) for line in events_file.read_text().splitlines()]
        assert [e["event"] for e in events].count("finished") == 1
        assert [e["event"] for e in events].count("resumed") == 1
        chart = [p["step"] for p in json.loads(job["metrics"])]
        assert chart == sorted(set(chart)) and chart[-1] == STEPS  # one point a step, redone ones replaced

        # MLflow: exactly one point per logged step for every training metric, across the resume.
        run_id = job["mlflow_run_id"]
        latest = mlflow_get(mlflow_uri, "runs/get", run_id=run_id)["run"]["data"]["metrics"]
        keys = [m["key"] for m in latest if not m["key"].startswith("system/")]
        assert "loss" in keys
        for key in keys:
            history = mlflow_get(mlflow_uri, "metrics/get-history", run_id=run_id, metric_key=key)["metrics"]
            steps = [m["step"] for m in history]
            assert len(steps) == len(set(steps)), f"{key}: {sorted(steps)}"
        losses = mlflow_get(mlflow_uri, "metrics/get-history", run_id=run_id, metric_key="loss")["metrics"]
        assert sorted(m["step"] for m in losses) == chart
    finally:
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        _gone, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, f"still running after Ctrl-C: {[p.cmdline() for p in alive]}"
