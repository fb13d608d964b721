"""Settings for the test run: the app's own settings, pointed at services that the harness starts.

The environment is set before apps.settings is read, and child processes (the Celery worker, MLflow)
inherit it, so every process of a test run talks to the same Redis, database folder and MLflow. A Redis
or MLflow that a developer runs for `make run` is never touched.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_base = Path(__file__).resolve().parent.parent
# The first process of a test run chooses; the worker and MLflow processes it starts read this module
# too and must get the same answers, so they keep what they inherit. A developer's own ATELIER_DATA_DIR
# or REDIS_URL is never used by the tests.
if os.environ.get("ATELIER_TEST_HARNESS") != "1":
    os.environ["ATELIER_TEST_HARNESS"] = "1"
    _data = Path(os.environ.get("ATELIER_TEST_DATA_DIR") or _base / "var" / "test").resolve()
    os.environ["ATELIER_DATA_DIR"] = str(_data)
    # The one folder the tests offer models from by path: beside the data folder, never inside it.
    os.environ["ATELIER_MODEL_DIRS"] = str(_data.with_name(_data.name + "-models"))
    os.environ.pop("REDIS_URL", None)  # the embedded one, in the test data folder
    os.environ["ATELIER_REDIS_PORT"] = str(_free_port())  # used only when the socket path is too long
    os.environ["ATELIER_MLFLOW_PORT"] = str(_free_port())
    # The ASGI server's port (tests/conftest.py: asgi_server), chosen here so that every process's
    # GATEWAY_URL points at it: a training worker reaches a judge endpoint through that gateway.
    os.environ["ATELIER_PORT"] = str(_free_port())
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["ATELIER_HEARTBEAT_SECONDS"] = "1"
    # Short leases and grace periods, so the fault and cancel tests take seconds.
    os.environ["ATELIER_REAPER_SECONDS"] = "1"
    os.environ["ATELIER_JOB_LEASE_SECONDS"] = "5"
    os.environ["ATELIER_CANCEL_GRACE_SECONDS"] = "5"
    os.environ["ATELIER_PREEMPT_AFTER_SECONDS"] = "3"
    # The suite's judge, teacher and gateway listen on loopback: allowed here (workers.training.outbound).
    # The SSRF tests switch it off: settings.OUTBOUND_ALLOW for the forms, this variable for the training
    # layer in the test process (tests/test_outbound.py).
    os.environ["ATELIER_OUTBOUND_ALLOW"] = "127.0.0.0/8"
    # One torch thread in every process of the run (this one, the workers' training processes, the
    # engines): the suite runs several of them at once on two cores, and two spinning threads each made
    # the tiny model crawl. Measured with another job's load beside it: 100 full-SFT steps 89 s with two
    # threads, 23 s with one; the teacher wrote 48 tokens/s with two, 267 with one. The automatic plan's
    # values were measured with one thread too (bench/hparams_sweep.py), as test_faults.py runs its app.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
# Playwright's sync API runs an event loop in the test thread; the ORM calls tests make beside it are
# still synchronous and safe.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

from apps.settings import *  # noqa: E402, F403

# Fast hashing: the suite creates many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A queue of its own for the resilient-job tests, whose workers join and leave jobs.
JOB_QUEUES = {**JOB_QUEUES, "test-elastic": "train-elastic"}  # noqa: F405
# A queue that no worker serves: a test that claims a job itself is never raced by the session's trainer.
JOB_QUEUES["test-unserved"] = "train-unserved"
