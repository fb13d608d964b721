"""Jobs on the real Celery training worker: from the row to a trained model, cancelled, and resumed after
the worker's whole process tree is killed."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from apps.jobs.models import Job, Status
from apps.jobs.services import job_cancel, job_create
from tests.conftest import start_trainer
from tests.harness import mlflow_get, mlflow_runs
from workers.training import tiny

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
REVERSE = tiny.DEMO / "reverse"


def _spec(model: Path, steps: int, **training: Any) -> dict[str, Any]:
    return {
        "technique": "sft", "model": str(model), "dataset": str(REVERSE / "sft.jsonl"),
        "eval_dataset": str(REVERSE / "eval.jsonl"),
        # Every step trained: early stopping (on by default) may end a run whose held-out sample stops
        # improving (the killed-worker test's did at step 42 of 60); its own tests are test_convergence.py.
        "training": {"method": "lora", "max_steps": steps, "batch_size": 8, "early_stopping": False, **training},
    }  # fmt: skip


def _wait(job: Job, predicate: Callable[[Job], bool], timeout: float = 240) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if predicate(job):
            return job
        time.sleep(0.2)
    raise AssertionError(
        f"job {job.pk} is {job.status} at step {job.step} after {timeout} s:\n{job.log_tail[-2000:]}"
    )


def test_a_job_runs_on_the_training_worker_to_a_trained_model_in_mlflow(
    alice, alice_project, tiny_model, celery_trainer, mlflow_service
):
    job = job_create(project=alice_project, user=alice, name="reverse", spec=_spec(tiny_model / "partial", 30),
                     auto_evaluate=False)  # fmt: skip
    job = _wait(job, lambda j: j.ended)
    assert job.status == Status.SUCCEEDED, (job.error, job.log_tail[-2000:])
    assert job.step == 30 and job.max_steps == 30 and job.progress == 1.0
    assert job.attempts == 1 and job.worker.startswith("trainer@")
    assert [p["step"] for p in job.metrics] == sorted(p["step"] for p in job.metrics)
    # Every training step logged its loss; the held-out sample's step-0 point is the score before training.
    assert all("loss" in p for p in job.metrics if p["step"] > 0) and job.metrics[-1]["step"] == 30
    assert job.metrics[0]["step"] == 0 and "loss" not in job.metrics[0] and "heldout" in job.metrics[0]
    assert Path(job.artifacts["adapter"], "adapter_model.safetensors").exists()
    assert job.result["heldout_after"] >= 0
    run = mlflow_get(mlflow_service, "runs/get", run_id=job.mlflow_run_id)["run"]
    assert run["info"]["status"] == "FINISHED" and run["info"]["run_name"] == f"sft-{job.pk}"
    assert "train.log" not in job.log_tail and job.log_tail  # the trainer's own log lines


def test_a_failing_spec_ends_the_job_failed_with_the_trainers_message(alice, alice_project, celery_trainer):
    spec = _spec(Path("/nowhere/model"), 5)
    job = _wait(
        job_create(project=alice_project, user=alice, name="bad", spec=spec, auto_evaluate=False),
        lambda j: j.ended,
    )
    assert job.status == Status.FAILED
    assert "/nowhere/model" in job.error


def test_cancelling_a_running_job_stops_it_within_the_grace_period_and_keeps_its_checkpoint(
    alice, alice_project, tiny_model, celery_trainer
):
    spec = _spec(tiny_model / "partial", 2000, save_steps=10)
    spec["tracking"] = {"enabled": False}
    job = job_create(project=alice_project, user=alice, name="long", spec=spec, auto_evaluate=False)
    _wait(job, lambda j: j.status == Status.RUNNING and j.step >= 20)
    asked = time.monotonic()
    job_cancel(job=job, actor=alice)
    job = _wait(job, lambda j: j.ended, timeout=60)
    from django.conf import settings

    assert time.monotonic() - asked < 2 * settings.JOB_CANCEL_GRACE_SECONDS + 5
    assert job.status == Status.CANCELLED and job.step < 2000
    checkpoints = sorted(job.files.checkpoints.glob("checkpoint-*"))
    assert checkpoints, "the last checkpoint is kept"
    trainers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(job.output_dir) in " ".join(p.info["cmdline"] or [])
    ]
    assert trainers == []


def test_a_job_whose_worker_is_killed_resumes_on_a_fresh_worker_and_succeeds_once(
    alice, alice_project, tiny_model, celery_trainer, celery_beat, trainer_db_url, mlflow_service
):
    steps, interval = 60, 10
    job = job_create(
        project=alice_project,
        user=alice,
        name="survivor",
        spec=_spec(tiny_model / "partial", steps, save_steps=interval),
        auto_evaluate=False,
    )
    _wait(job, lambda j: j.status == Status.RUNNING and j.step >= interval + 5)
    first_run = job.mlflow_run_id
    worker = psutil.Process(celery_trainer["service"].process.pid)
    tree = [worker, *worker.children(recursive=True)]
    for process in tree:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(tree, timeout=10)
    killed_at = Job.objects.get(pk=job.pk).step
    celery_trainer["service"] = start_trainer(trainer_db_url)

    job = _wait(job, lambda j: j.ended)
    assert job.status == Status.SUCCEEDED, (job.error, job.log_tail[-2000:])
    assert job.attempts == 2 and job.step == steps
    events = [json.loads(line) for line in job.files.events.read_text().splitlines()]
    resumed = [e for e in events if e["event"] == "resumed"]
    assert len(resumed) == 1
    # At most one checkpoint interval is trained twice.
    assert killed_at - resumed[0]["step"] <= interval
    assert [e["event"] for e in events].count("finished") == 1
    assert job.mlflow_run_id == first_run
    runs = mlflow_runs(mlflow_service, f"project-{alice_project.pk}")
    assert [r["info"]["run_id"] for r in runs if r["info"]["run_name"] == f"sft-{job.pk}"] == [first_run]
