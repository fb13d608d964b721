"""JSON routes answer programs in JSON: 401 for an anonymous request (not an HTML login redirect), and
another project's objects stay 404, in JSON."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.jobs.services import job_create

pytestmark = pytest.mark.django_db


def test_an_anonymous_request_to_a_json_route_gets_401_in_json(client, alice, alice_project):
    job = job_create(project=alice_project, user=alice, name="job",
                     spec={"technique": "sft", "model": "/m", "dataset": "/d.jsonl"})  # fmt: skip
    for url in (
        reverse("api-project-list"),
        reverse("api-project-detail", args=[alice_project.pk]),
        reverse("api-job-list", args=[alice_project.pk]),
        reverse("api-job-detail", args=[alice_project.pk, job.pk]),
        "/api/no-such-route/",
    ):
        response = client.get(url)
        assert response.status_code == 401, url
        assert response["Content-Type"] == "application/json" and "Log in first" in response.json()["error"]


def test_another_projects_objects_are_404_in_json(client, alice, alice_project, bob):
    job = job_create(project=alice_project, user=alice, name="job",
                     spec={"technique": "sft", "model": "/m", "dataset": "/d.jsonl"})  # fmt: skip
    client.force_login(bob)
    for url in (
        reverse("api-project-detail", args=[alice_project.pk]),
        reverse("api-job-list", args=[alice_project.pk]),
        reverse("api-job-detail", args=[alice_project.pk, job.pk]),
        "/api/no-such-route/",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response["Content-Type"] == "application/json" and "error" in response.json()
    client.force_login(alice)
    assert client.get(reverse("api-job-detail", args=[alice_project.pk, job.pk])).json()["name"] == "job"
