"""Dataset files are named by the folder's id, never by the name a person typed or uploaded with, so no
name can make one file overwrite another (saving generated rows as "provenance" once wrote the rows over
the provenance records beside them)."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.datasets import services as dataset_services
from apps.jobs.models import Job, Kind, Status
from apps.synthetic.models import GeneratedRow, Verdict
from apps.synthetic.services import generation_save_dataset

pytestmark = pytest.mark.django_db


def _generation(project, user) -> Job:
    job = Job.objects.create(project=project, created_by=user, name="rows", technique="sft",
                             kind=Kind.SYNTHESIS, spec={}, status=Status.SUCCEEDED)  # fmt: skip
    for i, word in enumerate(("cat", "dog")):
        GeneratedRow.objects.create(
            job=job, index=i, data={"prompt": f"reverse: {word}", "completion": word[::-1]},
            original={}, provenance={"teacher": "t", "topic": "words"}, verdict=Verdict.ACCEPTED,
        )  # fmt: skip
    return job


@pytest.mark.parametrize("name", ["provenance", "provenance.jsonl", "../../escape", "rows"])
def test_saving_generated_rows_under_any_name_keeps_both_the_rows_and_their_provenance(
    alice, alice_project, settings, tmp_path, name
):
    settings.DATA_DIR = tmp_path
    dataset = generation_save_dataset(job=_generation(alice_project, alice), user=alice, name=name)
    rows = [json.loads(line) for line in dataset.file.read_text().splitlines()]
    origin = [
        json.loads(line) for line in (dataset.file.parent / "provenance.jsonl").read_text().splitlines()
    ]
    assert [r["completion"] for r in rows] == ["tac", "god"]
    assert [o["row"] for o in origin] == [0, 1] and all("completion" not in o for o in origin)
    assert dataset.name.endswith(".jsonl") and dataset.file.name == "rows.jsonl"
    assert dataset.file.parent.parent == tmp_path / "projects" / str(alice_project.pk) / "datasets"


def test_an_upload_is_stored_under_the_datasets_id_and_shown_under_its_own_name(
    alice, alice_project, settings, tmp_path
):
    settings.DATA_DIR = tmp_path
    upload = SimpleUploadedFile("provenance.jsonl", b'{"prompt": "reverse: cat", "completion": "tac"}\n')
    dataset = dataset_services.dataset_upload(project=alice_project, user=alice, upload=upload)
    assert dataset.name == "provenance.jsonl" and dataset.file.name == "rows.jsonl" and dataset.rows == 1


def test_a_broken_line_keeps_the_good_rows_and_is_listed_under_the_name_it_was_uploaded_with(
    alice, alice_project, settings, tmp_path
):
    settings.DATA_DIR = tmp_path
    upload = SimpleUploadedFile("mine.jsonl", b'{"prompt": "a", "completion": "b"}\n{oops}\n')
    dataset = dataset_services.dataset_upload(project=alice_project, user=alice, upload=upload)
    dataset.refresh_from_db()
    assert dataset.rows == 1 and dataset.checks["sft"]["good"] == 1 and not dataset.fits("sft")
    assert dataset.survey["unreadable"] == [
        [2, "is not valid JSON: Expecting property name enclosed in double quotes at column 2"]
    ]


def test_a_file_with_no_readable_line_is_refused_with_its_name_and_leaves_nothing(
    alice, alice_project, settings, tmp_path
):
    settings.DATA_DIR = tmp_path
    upload = SimpleUploadedFile("mine.jsonl", b"{oops}\n[1]\n")
    with pytest.raises(Exception) as caught:
        dataset_services.dataset_upload(project=alice_project, user=alice, upload=upload)
    assert (
        "No line of mine.jsonl could be read as a row: 2 bad lines in mine.jsonl: line 1 is not valid JSON"
        in str(caught.value)
    )
    assert not any((tmp_path / "projects").rglob("*.jsonl"))
