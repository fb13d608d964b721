"""Named fixtures and the real services: Redis, a Celery worker, Celery beat, MLflow and Chromium.

Services start once per session, on first use, and stop at its end. Nothing is mocked: the tests talk
to the same redis-server, worker and MLflow server that `make run` starts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from apps.projects.models import Project
from apps.projects.services import project_create
from tests.factories import PASSWORD, UserFactory
from tests.harness import Service, database_url_of_test_db, python
from workers.training.folder import JobFolder

BASE_DIR = Path(settings.BASE_DIR)
ARTIFACTS = Path(os.environ.get("ATELIER_TEST_ARTIFACTS") or BASE_DIR / "test-artifacts")
LOGS = Path(settings.DATA_DIR) / "logs"
CHROMIUM = os.environ.get("ATELIER_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def alice_project(alice) -> Project:
    return project_create(user=alice, name="Support bot", description="Answers tickets.")


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# Real services ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_service() -> Iterator[str]:
    from apps.core.selectors import redis_client

    service = Service("redis", python("-m", "apps.launcher", "redis"), LOGS)
    service.wait_until(lambda: bool(redis_client().ping()), 15, "answering PING")
    yield settings.REDIS_URL
    service.stop()


def start_worker(name: str, queues: str, concurrency: int, db_url: str) -> Service:
    """A real Celery worker process on the test database, answering a ping before it is returned."""
    from workers.celery import app

    service = Service(
        f"celery-{name}",
        python("-m", "celery", "-A", "workers", "worker", "-Q", queues, "-c", str(concurrency),
               "-n", f"{name}@%h", "--loglevel", "INFO"),
        LOGS,
        env={"DATABASE_URL": db_url},
    )  # fmt: skip

    def answers() -> bool:
        return any(node.startswith(f"{name}@") for node in app.control.inspect(timeout=0.5).ping() or {})

    service.wait_until(answers, 60, "answering a ping")
    return service


def start_trainer(db_url: str) -> Service:
    """A real training worker (the `train-cpu` queue, one job at a time), as `make run` starts it."""
    return start_worker("trainer", "train-cpu", 1, db_url)


@pytest.fixture(scope="session")
def celery_worker(redis_service, django_db_setup, django_db_blocker) -> Iterator[Service]:
    """A real worker process for the housekeeping queue, on the test database."""
    with django_db_blocker.unblock():
        service = start_worker("test", "default", 2, database_url_of_test_db())
    yield service
    service.stop()


@pytest.fixture(scope="session")
def trainer_db_url(redis_service, django_db_setup, django_db_blocker) -> str:
    with django_db_blocker.unblock():
        return database_url_of_test_db()


@pytest.fixture(scope="session")
def celery_trainer(trainer_db_url, celery_worker) -> Iterator[dict[str, Service]]:
    """The training worker, in a dict so that a test that kills it can put a fresh one in its place."""
    holder = {"service": start_trainer(trainer_db_url)}
    yield holder
    holder["service"].stop()


@pytest.fixture(scope="session")
def celery_beat(celery_worker) -> Iterator[Service]:
    service = Service(
        "celery-beat",
        python("-m", "celery", "-A", "workers", "beat", "--loglevel", "INFO",
               "--schedule", str(Path(settings.DATA_DIR) / "test-celerybeat-schedule")),
        LOGS,
    )  # fmt: skip
    yield service
    service.stop()


@pytest.fixture(scope="session")
def mlflow_service() -> Iterator[str]:
    uri = settings.MLFLOW_TRACKING_URI
    # A fresh store each session: runs and registered models of earlier sessions would leak into tests.
    shutil.rmtree(Path(settings.DATA_DIR) / "mlflow", ignore_errors=True)
    service = Service("mlflow", python("-m", "apps.launcher", "mlflow"), LOGS)

    def healthy() -> bool:
        with urllib.request.urlopen(f"{uri}/health", timeout=1) as response:
            return response.status == 200

    service.wait_until(healthy, 120, "healthy")
    yield uri
    service.stop()


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The built-in tiny model, built once and kept in the test data folder between runs (a build of
    another version is rebuilt)."""
    from workers.training import tiny

    out = Path(settings.DATA_DIR) / "models" / "atelier-tiny"
    tiny.build(out)
    return out


# Trained artifacts, shared between tests ------------------------------------------------------------

FULL_SFT_STEPS = 600


def run_spec(folder: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a spec in this process (no tracking, the reverse task's held-out split); its events."""
    from workers.training import tiny
    from workers.training.events import read_events
    from workers.training.train import run_and_report

    spec = {"output_dir": str(folder / "out"), "tracking": {"enabled": False},
            "eval_dataset": str(tiny.DEMO / "reverse" / "eval.jsonl"), **spec}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec))
    code = run_and_report(folder / "spec.json")
    events = read_events(JobFolder(folder / "out").events)
    assert code == 0, events[-1]
    return events


@pytest.fixture(scope="session")
def full_sft(tmp_path_factory, tiny_model) -> tuple[Path, list[dict[str, Any]]]:
    """Full SFT of the base model on the reverse task: asserted on by test_learning, and the customized
    model of the report tests (one training run for both)."""
    from workers.training import tiny

    folder = tmp_path_factory.mktemp("full-sft")
    events = run_spec(folder, {
        "technique": "sft", "model": str(tiny_model / "base"), "dataset": str(tiny.DEMO / "reverse" / "sft.jsonl"),
        "training": {"method": "full", "max_steps": FULL_SFT_STEPS, "batch_size": 32, "learning_rate": 1e-3,
                     "save_steps": 10_000},
    })  # fmt: skip
    return folder / "out" / "model", events


@pytest.fixture(scope="session")
def judge_url(tmp_path_factory) -> Iterator[str]:
    """tests/training/judge_server.py: judges that answer garbage, slowly, or always "A" (its docstring),
    for the unit tests of reading a judge's replies."""
    port = free_port()
    service = Service(
        "judge", [sys.executable, str(Path(__file__).parent / "training" / "judge_server.py"), str(port)],
        tmp_path_factory.mktemp("judge"),
    )  # fmt: skip
    service.wait_until(lambda: port_open(port), 30, "listening")
    yield f"http://127.0.0.1:{port}/v1"
    service.stop()


@pytest.fixture(scope="session")
def builtin_judge_url(tiny_model) -> Iterator[str]:
    """The built-in judge (`atelier-tiny/judge`) served by the built-in engine as the model `judge`: the
    judge of the training and report tests that run without the web app (those with it deploy it as an
    endpoint and reach it through the gateway)."""
    port = free_port()
    engine = Service("builtin-judge", python("-m", "workers.serving", "engine", "--model", str(tiny_model / "judge"),
                                             "--port", str(port), "--name", "judge"), LOGS)  # fmt: skip
    # The port itself: the engine logs "listening" just before uvicorn binds it.
    engine.wait_until(lambda: port_open(port), 90, "listening")
    yield f"http://127.0.0.1:{port}/v1"
    engine.stop()


@pytest.fixture(scope="session")
def teacher_url(tmp_path_factory) -> Iterator[str]:
    """tests/training/teacher_server.py: a stand-in for a capable teacher model (see its docstring)."""
    port = free_port()
    service = Service(
        "teacher", [sys.executable, str(Path(__file__).parent / "training" / "teacher_server.py"), str(port)],
        tmp_path_factory.mktemp("teacher"),
    )  # fmt: skip
    service.wait_until(lambda: port_open(port), 30, "listening")
    yield f"http://127.0.0.1:{port}/v1"
    service.stop()


def run_evaluation(folder: Path, spec: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """Run an evaluation spec in this process; its exit status and events."""
    from workers.training.evaluation import evaluate_and_report
    from workers.training.events import read_events

    spec = {"output_dir": str(folder / "out"), **spec}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec))
    code = evaluate_and_report(folder / "spec.json")
    return code, read_events(JobFolder(folder / "out").events)


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory, tiny_model, full_sft, builtin_judge_url) -> Path:
    """The base model against the fully fine-tuned one on the reverse task's held-out rows, with graders,
    text metrics and the built-in judge (rubric scores and pairwise): one evaluation for the report tests
    and the pages that show it. Its output folder."""
    from workers.training import tiny

    folder = tmp_path_factory.mktemp("evaluated")
    code, events = run_evaluation(folder, {
        "models": [{"label": "base", "model": str(tiny_model / "base")},
                   {"label": "customized", "model": str(full_sft[0])}],
        "dataset": str(tiny.DEMO / "reverse" / "eval.jsonl"), "graders": ["exact_match", "contains"],
        "judge": {"base_url": builtin_judge_url, "model": "judge", "rubric": "The letters are reversed."},
        "max_new_tokens": 24,
    })  # fmt: skip
    assert code == 0, events[-1]
    return folder / "out"


@pytest.fixture(scope="session")
def lora_adapter(tmp_path_factory, tiny_model) -> Path:
    """A LoRA adapter on the partly trained tiny model (40 steps of SFT on the reverse task): what the
    serving tests deploy next to the plain base."""
    from workers.training import tiny

    folder = tmp_path_factory.mktemp("lora")
    events = run_spec(folder, {
        "technique": "sft", "model": str(tiny_model / "partial"), "dataset": str(tiny.DEMO / "reverse" / "sft.jsonl"),
        "training": {"method": "lora", "max_steps": 40, "save_steps": 10_000},
    })  # fmt: skip
    return Path(events[-1]["artifacts"]["adapter"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


@pytest.fixture(scope="session")
def test_db_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    """The test database's URL, for the processes the tests start. pytest-django creates the test
    database only when some collected test asks for it (a `db` fixture or mark); a module whose tests
    only talk HTTP to those processes, run alone, asks for none, so it is created here then."""
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    created = None
    with django_db_blocker.unblock():
        if connection.settings_dict["NAME"] != connection.creation._get_test_db_name():  # type: ignore[attr-defined]
            created = setup_databases(verbosity=0, interactive=False, aliases={"default"})  # type: ignore[arg-type]
        yield database_url_of_test_db()
        if created is not None:
            teardown_databases(created, verbosity=0)


@pytest.fixture(scope="session")
def asgi_server(redis_service, test_db_url) -> Iterator[str]:
    """The web app and gateway under uvicorn (ASGI, as `make run` serves them) on the test database: the
    gateway's streaming needs a real ASGI server, which pytest-django's live server is not."""
    from apps import env

    db_url = test_db_url
    port = env.web_port()  # tests/settings.py chose it, so that settings.GATEWAY_URL is this server's
    service = Service(
        "uvicorn",
        python("-m", "apps.launcher", "web"),  # one of `make run`'s web processes
        LOGS,
        env={"DATABASE_URL": db_url, "ATELIER_HOST": "127.0.0.1", "ATELIER_PORT": str(port)},
    )  # fmt: skip
    service.wait_until(lambda: port_open(port), 60, "listening")
    yield f"http://127.0.0.1:{port}"
    service.stop()


@pytest.fixture(scope="session")
def engine_supervisor(redis_service, test_db_url) -> Iterator[Service]:
    """The real engine supervisor (checking its rows three times a second) on the test database; the
    engines it starts are its children and stop with it."""
    db_url = test_db_url
    stand_in = Path(__file__).parent / "serving" / "vllm_stand_in"  # `vllm` for the vLLM engine's tests
    service = Service(
        "engines",
        python("-m", "workers.engines", "0.3"),
        LOGS,
        env={"DATABASE_URL": db_url, "PATH": f"{stand_in}:{os.environ['PATH']}", "ATELIER_TEST_PYTHON": sys.executable,
             "ATELIER_TEST_VLLM_LOG": str(LOGS / "vllm-calls.jsonl")},
    )  # fmt: skip
    service.wait_until(lambda: "engine supervisor running" in service.log_tail(), 60, "running")
    yield service
    service.stop()


# The browser ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not at {CHROMIUM}: `make test` installs Debian's chromium package.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                # This machine has no network: without these Chromium keeps trying to reach Google.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def _watched_page(browser, base_url: str) -> Iterator[Any]:
    """A page whose console is watched for Content-Security-Policy violations: every browser test then
    also checks that what it visited runs no inline script, handler or eval that the policy refuses."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations: list[str] = []

    def watch(message: Any) -> None:
        if "Content Security Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", watch)
    yield page
    context.close()
    assert not violations, "\n".join(violations)


@pytest.fixture
def page(browser, live_server):
    yield from _watched_page(browser, live_server.url)


@pytest.fixture
def asgi_page(browser, asgi_server):
    """A page on the uvicorn server (for what streams: the playground)."""
    yield from _watched_page(browser, asgi_server)


def login(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
