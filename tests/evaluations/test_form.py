"""The evaluation form bounds and checks what a person types for the regex and JSON-schema graders, and
says what is wrong beside the field: a 200,000-deep schema was a 500, and the regex "(" was accepted and
failed only in the finished report."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from apps.jobs.models import Job, Kind
from tests.evaluations.conftest import trained_job

pytestmark = pytest.mark.django_db


def beside(page: str, name: str, message: str) -> bool:
    """Whether `message` is in the error list of the form field whose input is named `name`."""
    for block in re.split(r'(?=<div class="field)', page):
        if f'name="{name}"' in block and "has-errors" in block:
            return message in block
    return False


def _post(client, project, tmp_path, alice, **fields):
    training = trained_job(project, alice, tmp_path)
    client.force_login(alice)
    url = reverse("evaluation-list", args=[project.pk])
    return client.post(url, {"candidate": training.pk, "baseline": "base", "dataset": "heldout",
                             "max_rows": 10, "max_new_tokens": 8, **fields})  # fmt: skip


@pytest.mark.parametrize(("field", "value", "message"), [
    ("regex_pattern", "(", "This is not a valid regular expression: missing ), unterminated subpattern at position 0."),
    ("regex_pattern", "a" * 2001, "at most 2000 characters"),
    ("json_schema_schema", "[" * 200_000, "This is over 64 KB"),
    ("json_schema_schema", "[" * 50_000 + "]" * 50_000, "This is over 64 KB"),
    ("json_schema_schema", '{"a":' * 1000 + "1" + "}" * 1000, "This nests deeper than 32 levels."),
    ("json_schema_schema", '{"type": "nope"}', "This is not a valid JSON schema (at type)"),
    ("json_schema_schema", '{"type": "object", "properties": {"a": {"minimum": "ten"}}}', "(at properties/a/minimum)"),
    ("json_schema_schema", "[1, 2]", "A JSON schema is an object (or true or false)."),
    ("json_schema_schema", "{oops", "This is not valid JSON: Expecting property name"),
])  # fmt: skip
def test_a_grader_option_that_cannot_work_is_refused_beside_its_field(
    client, alice, alice_project, tmp_path, field, value, message
):
    grader = "regex" if field == "regex_pattern" else "json_schema"
    response = _post(client, alice_project, tmp_path, alice, graders=[grader], **{field: value})
    assert response.status_code == 422
    assert beside(response.content.decode(), field, message)
    assert not Job.objects.filter(kind=Kind.EVALUATION).exists()


def test_a_sound_pattern_and_schema_reach_the_evaluation_spec_as_typed(
    client, alice, alice_project, tmp_path
):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    response = _post(client, alice_project, tmp_path, alice, graders=["regex", "json_schema"],
                     regex_pattern=r"\d+ ", json_schema_schema=json.dumps(schema))  # fmt: skip
    assert response.status_code == 302
    options = Job.objects.get(kind=Kind.EVALUATION).spec["grader_options"]
    assert options == {"regex": {"pattern": r"\d+ "}, "json_schema": {"schema": schema}}


def test_an_uploaded_eval_file_is_read_under_its_mapping_which_its_page_sets(
    client, alice, alice_project, tmp_path, settings
):
    """An uploaded file whose prompt column has another name was accepted, then the evaluation failed
    asking to map a column, with nowhere to map it. Now the form says where (the dataset's page); once
    mapped there, the evaluation's spec reads it under that mapping and its rows have prompts."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.datasets import services as dataset_services
    from workers.training import heldout

    settings.DATA_DIR = tmp_path
    upload = SimpleUploadedFile("asks.csv", b"ask,expected\nreverse: c a t,t a c\nreverse: d o g,g o d\n")
    dataset = dataset_services.dataset_upload(project=alice_project, user=alice, upload=upload)
    response = _post(client, alice_project, tmp_path, alice, dataset=str(dataset.pk), graders=["exact_match"])
    assert response.status_code == 422
    assert beside(
        response.content.decode(),
        "dataset",
        "Map a column to “prompt” on the dataset&#x27;s page (Datasets → asks.csv).",
    )
    mapped = client.post(reverse("dataset-detail", args=[alice_project.pk, dataset.pk]),
                         {"map_prompt": "ask", "map_answer": "expected", "format": "auto"})  # fmt: skip
    assert mapped.status_code == 302
    response = _post(client, alice_project, tmp_path, alice, dataset=str(dataset.pk), graders=["exact_match"])
    assert response.status_code == 302
    spec = Job.objects.get(kind=Kind.EVALUATION).spec
    assert spec["column_map"] == {"ask": "prompt", "expected": "answer"}
    rows = heldout.select_rows(spec["dataset"], spec["column_map"], 10, spec.get("data_format", "auto"))
    assert [(r["prompt"][-1]["content"], r["answer"]) for r in rows] == [
        ("reverse: c a t", "t a c"),
        ("reverse: d o g", "g o d"),
    ]
