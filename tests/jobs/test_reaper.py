"""The reaper, without a worker: expired leases are queued again, live ones are left alone, and a queue
whose jobs wait with nothing running gets its message again."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.jobs.models import Job, Status
from apps.jobs.services import job_create
from workers.runner import _save_progress, _Tail, job_claim_next, jobs_reap, jobs_release
from workers.training.folder import JobFolder

pytestmark = pytest.mark.django_db
SPEC = {"technique": "sft", "model": "/m", "dataset": "/d.jsonl"}


def _running(project, user, lease_seconds: float, status: str = Status.RUNNING) -> Job:
    job_create(project=project, user=user, name="j", spec=SPEC)
    job = job_claim_next(queue="train-cpu", worker="w1")
    assert job is not None
    Job.objects.filter(pk=job.pk).update(
        status=status, lease_until=timezone.now() + timedelta(seconds=lease_seconds)
    )
    return job


def test_a_job_whose_lease_ran_out_is_queued_again_to_resume(
    alice, alice_project, django_capture_on_commit_callbacks
):
    job = _running(alice_project, alice, lease_seconds=-1)
    with django_capture_on_commit_callbacks() as sent:
        assert jobs_reap() == [job.pk]
    job.refresh_from_db()
    assert job.status == Status.INTERRUPTED and job.worker == "" and len(sent) == 1
    again = job_claim_next(queue="train-cpu", worker="w2")
    assert again is not None and again.pk == job.pk and again.attempts == 2


def test_a_live_lease_is_left_alone(alice, alice_project):
    job = _running(alice_project, alice, lease_seconds=30)
    assert jobs_reap() == []
    assert Job.objects.get(pk=job.pk).status == Status.RUNNING


def test_a_cancelling_job_whose_worker_died_ends_cancelled(alice, alice_project):
    job = _running(alice_project, alice, lease_seconds=-1, status=Status.CANCELLING)
    jobs_reap()
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED


def test_a_queue_that_lost_its_message_gets_one_again(
    alice, alice_project, django_capture_on_commit_callbacks
):
    job = job_create(project=alice_project, user=alice, name="waiting", spec=SPEC)
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks() as sent:
        jobs_reap()
    assert len(sent) == 1


def test_a_worker_that_starts_again_gives_back_its_own_jobs_at_once_and_no_one_elses(
    alice, alice_project, django_capture_on_commit_callbacks
):
    mine = _running(alice_project, alice, lease_seconds=60)
    Job.objects.filter(pk=mine.pk).update(worker="train@box:4242")
    theirs = _running(alice_project, alice, lease_seconds=60)
    Job.objects.filter(pk=theirs.pk).update(worker="train2@box:4343")
    with django_capture_on_commit_callbacks() as sent:
        assert jobs_release("train@box") == [mine.pk]  # its lease still runs: no waiting for it
    mine.refresh_from_db()
    assert mine.status == Status.INTERRUPTED and mine.worker == "" and len(sent) == 1
    assert Job.objects.get(pk=theirs.pk).status == Status.RUNNING


def test_the_chart_drops_the_points_of_steps_a_resumed_job_does_again(alice, alice_project, tmp_path):
    job = _running(alice_project, alice, lease_seconds=60)
    job.metrics = [{"step": s, "loss": 1.0} for s in (10, 20, 30, 40)]
    Job.objects.filter(pk=job.pk).update(metrics=job.metrics)
    events = JobFolder(tmp_path).events
    lines = [{"event": "resumed", "step": 20}, {"event": "step", "step": 30, "metrics": {"loss": 0.5}}]
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    tail = _Tail()
    tail.read(events)
    assert _save_progress(job, tail, JobFolder(tmp_path).log)
    job.refresh_from_db()
    assert job.metrics == [{"step": 10, "loss": 1.0}, {"step": 20, "loss": 1.0}, {"step": 30, "loss": 0.5}]
