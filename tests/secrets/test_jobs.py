"""A job that uses a project secret, through the pages, the real workers and MLflow: the teacher check
(on a worker) and the job's teacher get the key; the spec file, events, log, job row, job page and MLflow
params never hold it."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from apps.jobs.models import Job, Kind, Status
from apps.secrets.models import ProjectSecret
from tests.harness import mlflow_get, wait_for_job

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
KEY = "sk-live-0b7e64d1c9a2f835"


def test_a_generation_with_a_secret_sends_the_key_to_its_teacher_and_nowhere_else(
    client, alice, alice_project, recorder, celery_worker, celery_trainer, mlflow_service
):
    client.force_login(alice)
    client.post(reverse("project-settings", args=[alice_project.pk]), {"name": "teacher", "value": KEY})
    form = client.get(reverse("generation-new", args=[alice_project.pk])).content.decode()
    assert 'value="secret:teacher"' in form and KEY not in form
    response = client.post(reverse("generation-new", args=[alice_project.pk]), {
        "technique": "sft", "description": "Reverse the letters of a word.", "rows": 3, "teacher": "url",
        "teacher_url": recorder.url, "teacher_model": "judge", "teacher_key": "secret:teacher",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-3000:]
    # The check ran on a worker, with the key: the form's process never fetched the URL itself.
    assert [h["path"] for h in recorder.hits] == ["/v1/models"]
    job = wait_for_job(Job.objects.get(kind=Kind.SYNTHESIS))
    assert job.status == Status.SUCCEEDED, job.error
    asked = [h for h in recorder.hits if h["path"] == "/v1/chat/completions"]
    assert asked and all(h["headers"]["Authorization"] == f"Bearer {KEY}" for h in recorder.hits)

    out = job.output_dir
    assert json.loads(job.files.spec.read_text())["teacher"] == {
        "base_url": recorder.url, "model": "judge", "api_key_env": "ATELIER_TEACHER_KEY"
    }  # fmt: skip
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    job.refresh_from_db()
    row = json.dumps([job.spec, job.result, job.log_tail, job.error, job.artifacts])
    assert "secret:teacher" in row and KEY not in row
    page = client.get(reverse("generation-detail", args=[alice_project.pk, job.pk])).content.decode()
    assert KEY not in page
    # The rows stage is the one logged to MLflow (the spec as params): the recorder's "7" makes no rows.
    client.post(reverse("generation-detail", args=[alice_project.pk, job.pk]), {"topics": "Words", "rows": 2})
    run = wait_for_job(Job.objects.get(parent=job))
    assert run.status == Status.SUCCEEDED and run.mlflow_run_id, run.error
    params = mlflow_get(mlflow_service, "runs/get", run_id=run.mlflow_run_id)["run"]["data"]["params"]
    assert any(p["value"] == "ATELIER_TEACHER_KEY" for p in params) and KEY not in json.dumps(params)
    assert ProjectSecret.objects.get().last_used_at is not None
