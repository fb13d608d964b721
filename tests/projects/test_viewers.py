"""A viewer looks but does not change or generate: every refused action says so on the page (an htmx
request reloads the page with the message, since htmx does not swap a 403), the playground refuses to
chat, and an API key stops working once the person who made it is a viewer."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.datasets.models import Dataset
from apps.endpoints.models import Endpoint
from apps.endpoints.services import api_key_create, endpoint_deploy
from apps.jobs.models import Job
from apps.jobs.services import job_create
from apps.projects.models import Membership, Role
from apps.projects.services import membership_add

pytestmark = pytest.mark.django_db
REFUSED = "Viewers can look but not change or generate anything in this project."


@pytest.fixture
def viewer(client, alice, alice_project, bob):
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.VIEWER)
    client.force_login(bob)
    return client


@pytest.fixture
def endpoint(alice, alice_project, tiny_model) -> Endpoint:
    return endpoint_deploy(project=alice_project, user=alice, model=str(tiny_model / "base"), name="tiny")


def test_a_viewers_deploy_and_upload_are_refused_with_a_message_not_ignored(viewer, alice_project):
    deploy = viewer.post(
        reverse("endpoint-list", args=[alice_project.pk]), {"model": "/models/x", "name": "x"}
    )
    upload = viewer.post(reverse("dataset-list", args=[alice_project.pk]),
                         {"file": SimpleUploadedFile("a.jsonl", b'{"prompt": "a", "completion": "b"}\n')})  # fmt: skip
    for response in (deploy, upload):
        assert response.status_code == 403 and REFUSED in response.content.decode()
    assert not Endpoint.objects.exists() and not Dataset.objects.exists()


def test_a_refused_htmx_request_reloads_the_page_with_the_message_on_it(viewer, alice, alice_project):
    job = job_create(project=alice_project, user=alice, name="job",
                     spec={"technique": "sft", "model": "/m", "dataset": "/d.jsonl"})  # fmt: skip
    response = viewer.post(
        reverse("job-action", args=[alice_project.pk, job.pk, "cancel"]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 403 and response["HX-Refresh"] == "true"
    page = viewer.get(reverse("job-detail", args=[alice_project.pk, job.pk])).content.decode()
    assert 'class="msg-error"' in page and REFUSED in page
    assert Job.objects.get(pk=job.pk).status == "queued"


def test_a_viewer_cannot_chat_in_the_playground_and_is_told_why(viewer, alice_project, endpoint):
    page = viewer.get(reverse("playground", args=[alice_project.pk])).content.decode()
    assert 'data-testid="viewer-notice"' in page and 'data-testid="send" disabled' in page
    response = viewer.post(
        reverse("endpoint-chat", args=[alice_project.pk, endpoint.pk]),
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}), content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 403
    assert (
        response.json()["error"]["code"] == "permission_denied"
        and REFUSED in response.json()["error"]["message"]
    )


def test_an_api_key_stops_generating_once_its_maker_is_a_viewer(client, alice, alice_project, bob, endpoint):
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.MEMBER)
    _, key = api_key_create(project=alice_project, user=bob, name="bob's app")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    assert client.get("/v1/models", **auth).status_code == 200
    Membership.objects.filter(project=alice_project, user=bob).update(role=Role.VIEWER)
    for response in (
        client.get("/v1/models", **auth),
        client.post("/v1/chat/completions", json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}),
                    content_type="application/json", **auth),
    ):  # fmt: skip
        assert response.status_code == 403
        assert "can no longer generate" in response.json()["error"]["message"]
