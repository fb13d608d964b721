"""Job pages and actions through Django's test client: scoping, roles, the queue and its order."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.jobs.models import Job, Status
from apps.jobs.selectors import queue_position
from apps.jobs.services import job_cancel, job_create, transition
from apps.projects.models import Role
from apps.projects.services import membership_add

pytestmark = pytest.mark.django_db
SPEC = {"technique": "sft", "model": "/m", "dataset": "/d.jsonl"}


def _job(project, user, name="job", **kwargs) -> Job:
    return job_create(project=project, user=user, name=name, spec=SPEC, **kwargs)


def test_another_users_job_is_a_404_everywhere(client, alice, alice_project, bob):
    job = _job(alice_project, alice)
    client.force_login(bob)
    for url in (
        reverse("job-detail", args=[alice_project.pk, job.pk]),
        reverse("job-metrics", args=[alice_project.pk, job.pk]),
        reverse("api-job-detail", args=[alice_project.pk, job.pk]),
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("job-action", args=[alice_project.pk, job.pk, "cancel"])).status_code == 404
    job.refresh_from_db()
    assert job.status == Status.QUEUED


def test_a_viewer_sees_jobs_but_cannot_start_or_cancel_them(client, alice, alice_project, bob):
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.VIEWER)
    job = _job(alice_project, alice)
    client.force_login(bob)
    page = client.get(reverse("job-detail", args=[alice_project.pk, job.pk])).content.decode()
    assert job.name in page and 'data-testid="cancel"' not in page
    assert client.post(reverse("job-action", args=[alice_project.pk, job.pk, "cancel"])).status_code == 403
    assert client.get(reverse("wizard-start", args=[alice_project.pk])).status_code == 403


def test_the_job_page_shows_the_queue_position_and_a_waiting_job_can_be_cancelled(
    client, alice, alice_project
):
    first, second = _job(alice_project, alice, "first"), _job(alice_project, alice, "second")
    client.force_login(alice)
    page = client.get(reverse("job-detail", args=[alice_project.pk, second.pk])).content.decode()
    assert "number 2 in the queue" in page
    response = client.post(reverse("job-action", args=[alice_project.pk, first.pk, "cancel"]))
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.status == Status.CANCELLED and queue_position(second) == 1


def test_people_reorder_only_their_own_waiting_jobs(client, alice, alice_project, bob):
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.MEMBER)
    a1, b1, a2 = (
        _job(alice_project, alice, "a1"),
        _job(alice_project, bob, "b1"),
        _job(alice_project, alice, "a2"),
    )
    client.force_login(alice)
    response = client.post(
        reverse("job-action", args=[alice_project.pk, a2.pk, "move"]),
        {"direction": "up", "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("job-list", args=[alice_project.pk])  # never off the site
    order = list(Job.objects.filter(status=Status.QUEUED).order_by("position").values_list("name", flat=True))
    assert order == ["a2", "b1", "a1"]  # alice's two swapped; bob's stays second
    assert [queue_position(Job.objects.get(pk=j.pk)) for j in (a2, b1, a1)] == [1, 2, 3]
    assert (
        client.post(
            reverse("job-action", args=[alice_project.pk, b1.pk, "move"]), {"direction": "up"}
        ).status_code
        == 403
    )


def test_the_jobs_list_filters_by_status_and_technique(client, alice, alice_project):
    _kept, cancelled = _job(alice_project, alice, "kept"), _job(alice_project, alice, "gone")
    job_cancel(job=cancelled, actor=alice)
    client.force_login(alice)
    url = reverse("job-list", args=[alice_project.pk])
    page = client.get(url, {"status": "cancelled"}).content.decode()
    assert "gone" in page and ">kept<" not in page
    assert "kept" in client.get(url, {"status": "active", "technique": "sft"}).content.decode()
    assert "No jobs match these filters" in client.get(url, {"technique": "dpo"}).content.decode()
    fragment = client.get(url, {"status": "queued"}, headers={"HX-Request": "true"}).content.decode()
    assert fragment.strip().startswith('<section class="card" id="jobs"') and "kept" in fragment


def test_statuses_move_only_along_their_declared_moves(alice, alice_project):
    job = _job(alice_project, alice)
    assert not transition(job, Status.SUCCEEDED)  # queued cannot succeed without running
    assert transition(job, Status.RUNNING) and transition(job, Status.SUCCEEDED)
    assert not transition(job, Status.RUNNING)  # an ended job stays ended
    with pytest.raises(ValidationError, match="already succeeded"):
        job_cancel(job=job, actor=alice)
    assert Job.objects.get(pk=job.pk).status == Status.SUCCEEDED


def test_the_api_lists_jobs_as_json(client, alice, alice_project):
    job = _job(alice_project, alice)
    client.force_login(alice)
    body = client.get(reverse("api-job-detail", args=[alice_project.pk, job.pk])).json()
    assert body["status"] == "queued" and body["queue_position"] == 1 and body["queue"] == "train-cpu"
    assert body["kind"] == "training" and body["evaluates"] is None
    assert [j["id"] for j in client.get(reverse("api-job-list", args=[alice_project.pk])).json()["jobs"]] == [
        job.pk
    ]
