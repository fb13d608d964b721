"""The run command's supervisor, for real: every process up, then Ctrl-C and nothing left running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.conf import settings

from tests.harness import python

pytestmark = pytest.mark.services


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait(
    check: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen[bytes], log: Path
) -> Any:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the launcher exited:\n{log.read_text()[-3000:]}"
        try:
            last = check()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what} not reached in {timeout} s (last: {last!r}):\n{log.read_text()[-3000:]}")


def test_the_launcher_starts_every_service_and_ctrl_c_stops_them_all(tmp_path):
    web_port, mlflow_port = _free_port(), _free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "MLFLOW_TRACKING_URI", "DATABASE_URL"}
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "apps.settings",
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
        "ATELIER_PORT": str(web_port),
        "ATELIER_MLFLOW_PORT": str(mlflow_port),
        "ATELIER_HEARTBEAT_SECONDS": "1",
    }
    manage = str(Path(settings.BASE_DIR) / "manage.py")
    subprocess.run([sys.executable, manage, "migrate", "-v", "0"], env=env, check=True)
    log = tmp_path / "launcher.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            python("-m", "apps.launcher", "start"),
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # like a terminal: Ctrl-C reaches the supervisor itself
        )
    children: list[psutil.Process] = []
    try:
        _status, body = _wait(
            lambda: (r := _get(f"http://127.0.0.1:{web_port}/accounts/login/"))[0] == 200 and r,
            60, "the login page", proc, log,
        )  # fmt: skip
        assert b"Log in to Atelier" in body
        _wait(lambda: _get(f"http://127.0.0.1:{mlflow_port}/health")[0] == 200, 90, "MLflow", proc, log)

        def healthy() -> dict | None:
            code, raw = _get(f"http://127.0.0.1:{web_port}/healthz")
            body = json.loads(raw)
            return body if code == 200 else None

        body = _wait(healthy, 60, "every service up", proc, log)
        assert body["services"] == {
            "Database": "up",
            "Redis": "up",
            "Celery workers": "up",
            "Celery beat": "up",
            "MLflow": "up",
            "Inference engines": "up",
            "Grader sandbox": "up",  # shown, but not part of the verdict: a host may refuse Python graders
        }
        assert (tmp_path / "data" / "redis" / "redis.sock").is_socket()
        children = psutil.Process(proc.pid).children(recursive=True)
        names = ""
        for child in children:
            with contextlib.suppress(psutil.Error):  # a child may exit (or be a zombie) meanwhile
                names += " " + " ".join(child.cmdline())
        for part in (
            "uvicorn",
            "worker -Q default",
            "worker -Q train",
            "beat",
            "redis-server",
            "mlflow",
            "workers.engines",
        ):
            assert part in names, part
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"still running after Ctrl-C: {[p.cmdline() for p in alive]}"
    assert proc.returncode is not None


@pytest.mark.parametrize(
    ("name", "command"),
    [("ATELIER_WEB_PROCESSES", "procfile"), ("ATELIER_TRAIN_WORKERS", "procfile"), ("ATELIER_PORT", "web")],
)
def test_a_number_setting_that_is_not_a_number_is_named_in_one_line(name, command, tmp_path):
    env = {**os.environ, "ATELIER_DATA_DIR": str(tmp_path), name: "two"}
    result = subprocess.run(
        [sys.executable, "-m", "apps.launcher", command], env=env, capture_output=True, text=True, check=False
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"{name} must be a whole number, not “two”."


@pytest.mark.parametrize(
    ("name", "said"), [("ATELIER_PORT", "a whole number"), ("ATELIER_JOB_LEASE_SECONDS", "a number")]
)
def test_make_runs_setup_names_a_setting_that_is_not_a_number_in_one_line(name, said, tmp_path):
    """`make run` migrates first (manage.py), which reads the settings: the same one line there."""
    env = {**os.environ, "ATELIER_DATA_DIR": str(tmp_path), name: "soon"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, check=False,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"{name} must be {said}, not “soon”."
