"""Resilient jobs on real Celery workers: replicas as tasks on a training queue, one a worker. A killed
replica is replaced and heals from a peer without restarting the job; a job that waits takes a worker
from a resilient job above its minimum (one replica leaves at a step boundary), and the resilient job
grows back when the worker is free again. (A resilient job run to its model, with the job page, is
tests/browser/test_resilient.py.)"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.jobs.models import Job, Replica, Status
from apps.jobs.services import job_cancel, job_create
from tests.conftest import start_worker
from workers.training import tiny
from workers.training.events import read_events

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
REVERSE = tiny.DEMO / "reverse"


@pytest.fixture(scope="module")
def elastic_workers(trainer_db_url, celery_beat) -> Iterator[list[Any]]:
    """Two training workers on a queue of their own (with beat's reaper, which also preempts)."""
    workers = [start_worker(f"elastic{i}", "train-elastic", 1, trainer_db_url) for i in range(2)]
    yield workers
    for worker in workers:
        worker.stop()


def _spec(model: Path, steps: int, batch: int = 8, minimum: int = 1) -> dict[str, Any]:
    return {
        "technique": "sft", "model": str(model), "dataset": str(REVERSE / "sft.jsonl"),
        "training": {"method": "full", "max_steps": steps, "batch_size": batch, "learning_rate": 1e-3,
                     "save_steps": 100_000},
        "resilience": {"min_replicas": minimum, "max_replicas": 2},
    }  # fmt: skip


def _wait(what: str, predicate: Callable[[], Any], timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def _events(job: Job, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_events(job.files.events) if e["event"] == kind]


def _live(job: Job) -> list[Replica]:
    return list(Replica.objects.filter(job=job, ended_at__isnull=True))


def test_a_killed_replica_heals_and_a_waiting_job_takes_a_worker_then_gives_it_back(
    alice, alice_project, tiny_model, elastic_workers
):
    resilient = job_create(project=alice_project, user=alice, name="elastic", spec=_spec(tiny_model / "base", 100_000, 16),
                           compute_class="test-elastic", auto_evaluate=False)  # fmt: skip
    _wait(
        "two replicas train together", lambda: any(e["participants"] == 2 for e in _events(resilient, "step"))
    )
    resilient.refresh_from_db()

    # SIGKILL the replica process of the worker that does not hold the job: its worker replaces it.
    other = next(r for r in _live(resilient) if r.worker != resilient.worker)
    pid = [e["pid"] for e in _events(resilient, "replica_started") if e["replica"] == other.number][-1]
    os.kill(pid, signal.SIGKILL)
    _wait("the replacement heals from a peer",
          lambda: [e for e in _events(resilient, "replica_healed") if e["replica"] == other.number and e["step"] > 5])  # fmt: skip
    died = [e for e in _events(resilient, "replica_died") if e["replica"] == other.number]
    assert died and died[0]["exit_code"] == -signal.SIGKILL
    other.refresh_from_db()
    assert other.restarts == 1 and other.ended_at is None
    # Survivors kept committing and the job never restarted.
    assert Job.objects.get(pk=resilient.pk).attempts == 1 and len(_events(resilient, "lighthouse")) == 1

    # A plain job waits for a worker: after the preemption delay one replica leaves at a step boundary.
    plain = job_create(project=alice_project, user=alice, name="waiting", compute_class="test-elastic",
                       spec={**_spec(tiny_model / "partial", 10), "resilience": {}}, auto_evaluate=False)  # fmt: skip
    _wait("the waiting job runs", lambda: Job.objects.get(pk=plain.pk).status != Status.QUEUED, 120)
    left = _events(resilient, "replica_left")
    assert len(left) == 1 and Replica.objects.get(job=resilient, number=left[0]["replica"]).leave_requested
    _wait("the waiting job succeeds", lambda: Job.objects.get(pk=plain.pk).status == Status.SUCCEEDED, 120)
    assert Job.objects.get(pk=resilient.pk).status == Status.RUNNING
    # The freed worker rejoins the resilient job: two replicas again, without a restart.
    rejoined = left[0]["time"]
    _wait("two replicas again", lambda: any(e["participants"] == 2 and e["time"] > rejoined + 1
                                            for e in _events(resilient, "step")), 120)  # fmt: skip
    assert len(_live(resilient)) == 2 and Job.objects.get(pk=resilient.pk).attempts == 1

    job_cancel(job=resilient, actor=alice)
    _wait("the resilient job is cancelled", lambda: Job.objects.get(pk=resilient.pk).ended, 60)
    assert Job.objects.get(pk=resilient.pk).status == Status.CANCELLED
    # Each replica's worker ends its own row when it next looks at the job (about a second later).
    _wait("every replica has ended", lambda: not _live(resilient), 30)
