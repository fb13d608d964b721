"""A generation through the pages and the real training worker: topics proposed, edited, rows
generated, curated and saved as a dataset that fits the technique, with the built-in teacher deployed as
an endpoint (served by the built-in engine, asked through the gateway); and bad input on the form. The
form's failure paths use tests/training/teacher_server.py, a stand-in whose `prose` model never writes
JSON and whose URL answers the worker's probe."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.urls import reverse

from apps.datasets.models import Dataset
from apps.jobs.models import Job, Kind, Status
from apps.synthetic.models import GeneratedRow
from tests.harness import wait_for_job
from tests.synthetic.conftest import documents_kept

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _form(teacher_url: str, **more) -> dict:
    return {"technique": "sft", "description": "Reverse the letters of a word.", "rows": 6,
            "teacher": "url", "teacher_url": teacher_url, "teacher_model": "teacher", **more}  # fmt: skip


def test_a_generation_goes_from_topics_to_a_curated_dataset(
    client, alice_project, built_in_teacher, celery_worker, celery_trainer
):
    teacher = built_in_teacher
    doc = SimpleUploadedFile("words.md", b"Reversing words: read the letters from the last to the first.")
    form = {"technique": "sft", "description": "Reverse the letters of a word.", "rows": 6, "teacher": "endpoint",
            "teacher_endpoint": teacher.pk, "documents": [doc], "seeds": '{"prompt": "reverse: s u n", "completion": "n u s"}'}  # fmt: skip
    response = client.post(reverse("generation-new", args=[alice_project.pk]), form)
    root = Job.objects.get(kind=Kind.SYNTHESIS)
    assert response.url == reverse("generation-detail", args=[alice_project.pk, root.pk])
    assert wait_for_job(root, timeout=300).status == Status.SUCCEEDED, root.error
    page = client.get(response.url).content.decode()
    # Sampled at the pipeline's temperature the teacher writes its usual tree, or (about one time in
    # ten) the same four lengths under one topic.
    assert re.search(
        r"(short words|words)\n- 3 letters\n- 4 letters\n(longer words\n)?- 5 letters\n- 6 letters", page
    ), page[-3000:]

    edited = "short words\n- 3 letters\nlonger words\n- 6 letters"
    client.post(response.url, {"topics": edited, "rows": 6})
    run = wait_for_job(Job.objects.get(parent=root), timeout=300)
    assert run.status == Status.SUCCEEDED, run.error
    rows = GeneratedRow.objects.filter(job=run).order_by("index")
    assert rows.count() == 6 and {r.topic for r in rows} <= {
        "short words / 3 letters",
        "longer words / 6 letters",
    }
    assert all(r.provenance["chunk"]["document"] == "words.md" for r in rows)
    assert all(r.data["prompt"].startswith("reverse: ") for r in rows)  # the teacher's own rows

    first, second, third, *_ = rows
    client.post(
        reverse("generation-rows", args=[alice_project.pk, run.pk]),
        {"row": [first.pk, second.pk], "verdict": "accepted"},
    )
    client.post(
        reverse("generation-rows", args=[alice_project.pk, run.pk]),
        {"row": [third.pk], "verdict": "rejected"},
    )
    edit = client.post(reverse("generation-row-edit", args=[alice_project.pk, run.pk, second.pk]),
                       {"prompt": second.data["prompt"], "completion": "edited answer"}, HTTP_HX_REQUEST="true")  # fmt: skip
    assert 'data-testid="row-saved"' in edit.content.decode()
    empty = client.post(
        reverse("generation-row-edit", args=[alice_project.pk, run.pk, first.pk]),
        {"prompt": "", "completion": "x"},
    )
    assert "cannot be empty" in empty.content.decode()
    client.post(reverse("generation-save", args=[alice_project.pk, run.pk]), {"name": "reversals"})
    dataset = Dataset.objects.get(project=alice_project)
    assert dataset.name == "reversals.jsonl" and dataset.rows == 2 and dataset.checks["sft"]["ok"]
    saved = [json.loads(line) for line in dataset.file.read_text().splitlines()]
    assert saved[1] == {"prompt": second.data["prompt"], "completion": "edited answer"}
    origin = [
        json.loads(line) for line in (dataset.file.parent / "provenance.jsonl").read_text().splitlines()
    ]
    assert (
        origin[1]["edited"]
        and origin[1]["original"] == second.original
        and origin[0]["generation_job"] == run.pk
    )
    assert run.mlflow_run_id or run.result.get("rows") == 6


def test_a_teacher_that_never_writes_json_ends_with_every_output_counted(
    client, alice, alice_project, teacher_url, celery_worker, celery_trainer
):
    client.force_login(alice)
    client.post(
        reverse("generation-new", args=[alice_project.pk]), _form(teacher_url, teacher_model="prose", rows=3)
    )
    root = wait_for_job(Job.objects.get(kind=Kind.SYNTHESIS))
    assert root.status == Status.SUCCEEDED  # no usable tree: one topic, the task itself
    client.post(
        reverse("generation-detail", args=[alice_project.pk, root.pk]),
        {"topics": "Reverse the letters of a word.", "rows": 3},
    )
    run = wait_for_job(Job.objects.get(parent=root))
    assert run.status == Status.SUCCEEDED and not GeneratedRow.objects.filter(job=run).exists()
    page = client.get(reverse("generation-detail", args=[alice_project.pk, root.pk])).content.decode()
    assert (
        'data-testid="rows-made">0<' in page and "3 outputs were dropped:" in page and "not JSON: 3" in page
    )


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"rows": 0}, "rows", "Ask for at least 1 row."),
        ({"rows": 1_000_000}, "rows", "At most 10,000 rows per generation"),
        # The worker's check says the same for a closed port as for any server that is not OpenAI's.
        (
            {"teacher_url": "http://127.0.0.1:9/v1"},
            "teacher_url",
            "did not answer like an OpenAI-compatible API",
        ),
        ({"teacher_url": "http://169.254.169.254/v1"}, "teacher_url", "never requested"),
        ({"teacher": "endpoint"}, "teacher_endpoint", "deploy one first"),
    ],
)
def test_bad_input_is_refused_on_the_form(
    client, alice, alice_project, teacher_url, celery_worker, change, field, message
):
    client.force_login(alice)
    page = client.post(
        reverse("generation-new", args=[alice_project.pk]), {**_form(teacher_url), **change}
    ).content.decode()
    assert message in page and not Job.objects.exists()


def test_bad_documents_are_refused_and_nothing_is_kept(
    client, alice, alice_project, teacher_url, celery_worker, settings
):
    client.force_login(alice)
    before = documents_kept(alice_project)
    big = TemporaryUploadedFile("manual.pdf", "application/pdf", 50 * 1024 * 1024, None)
    big.file.truncate(50 * 1024 * 1024)  # type: ignore[union-attr]  # a 50 MB PDF
    page = client.post(
        reverse("generation-new", args=[alice_project.pk]), {**_form(teacher_url), "documents": [big]}
    ).content.decode()
    assert "manual.pdf is 50 MB; a document may be at most 20 MB" in page
    empty = SimpleUploadedFile("notes.txt", b"   \n")
    page = client.post(
        reverse("generation-new", args=[alice_project.pk]), {**_form(teacher_url), "documents": [empty]}
    ).content.decode()
    assert "notes.txt has no text" in page
    assert not Job.objects.exists()
    assert documents_kept(alice_project) == before


def test_a_projects_endpoint_as_teacher_is_reached_through_the_gateway_with_a_key_for_that_run_only(
    alice, alice_project, tiny_model, settings, redis_service
):
    from apps.endpoints.models import ApiKey
    from apps.endpoints.services import endpoint_deploy, key_digest
    from apps.synthetic.services import TEACHER_KEY_ENV, generation_start
    from workers.runner import _run_key, training_spec

    endpoint = endpoint_deploy(
        project=alice_project, user=alice, model=str(tiny_model / "partial"), name="teacher"
    )
    job = generation_start(project=alice_project, user=alice, technique="sft", description="Reverse words.", rows=5,
                           teacher={"endpoint": endpoint.pk})  # fmt: skip
    spec = training_spec(job)
    assert spec["teacher"] == {
        "base_url": settings.GATEWAY_URL,
        "model": "teacher",
        "api_key_env": TEACHER_KEY_ENV,
    }
    assert job.spec["teacher"] == {"endpoint": endpoint.pk}  # no key in the job's row
    key, env = _run_key(job)
    assert key is not None and set(env) == {TEACHER_KEY_ENV}
    assert ApiKey.objects.get(digest=key_digest(env[TEACHER_KEY_ENV])).project == alice_project
