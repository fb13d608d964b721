"""A Hugging Face dataset id in the Data step: read from this machine's cache (HF_HOME) as huggingface_hub
lays it out, never from a folder of the same name, and kept in the project as Parquet so that it is
mapped, browsed and trained on as an upload is. No hub is reachable here: the cache is written by hand
in the layout huggingface_hub reads (refs/main naming the snapshot folder), and the code that reads it
is the real one."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.urls import reverse

from apps.datasets.models import Dataset
from apps.jobs.models import Draft
from workers.training import data

pytestmark = pytest.mark.django_db

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
TRAIN = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(30)]
TEST = [{"question": "What is 1 + 2?", "answer": "3"}]


@pytest.fixture
def hub_cache(monkeypatch, tmp_path) -> Path:
    """An offline Hugging Face cache holding one dataset, acme/arith, with a train and a test split."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    repo = tmp_path / "hf" / "hub" / "datasets--acme--arith"
    files = repo / "snapshots" / COMMIT / "data"
    files.mkdir(parents=True)
    for split, rows in (("train", TRAIN), ("test", TEST)):
        (files / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    multi = tmp_path / "hf" / "hub" / "datasets--acme--multi"  # subsets, declared as the Hub's cards do
    for subset in ("main", "socratic"):
        (multi / "snapshots" / COMMIT / subset).mkdir(parents=True)
        (multi / "snapshots" / COMMIT / subset / "train.jsonl").write_text(json.dumps(
            {"question": f"{subset}: 1 + 1?", "answer": "2"}) + "\n")  # fmt: skip
    (multi / "snapshots" / COMMIT / "README.md").write_text(
        "---\nconfigs:\n" + "".join(f"- config_name: {s}\n  data_files:\n  - split: train\n    path: {s}/train.jsonl\n"
                                    for s in ("main", "socratic")) + "---\n"
    )  # fmt: skip
    (multi / "refs").mkdir()
    (multi / "refs" / "main").write_text(COMMIT)
    return tmp_path / "hf" / "hub"


def test_a_cached_dataset_is_read_by_its_id_and_split(hub_cache):
    assert [r.row for r in data.records("hf:acme/arith")] == TRAIN
    assert [r.row for r in data.records("hf:acme/arith:test")] == TEST
    with pytest.raises(
        data.DataError, match=r"Unknown split \"validation\"\. Should be one of \['train', 'test'\]"
    ):
        list(data.records("hf:acme/arith:validation"))
    assert data.hub_dataset("acme/multi", subset="socratic")[0]["question"] == "socratic: 1 + 1?"
    with pytest.raises(
        data.DataError, match="“acme/multi” has several subsets: choose one of main, socratic"
    ):
        data.hub_dataset("acme/multi")


def test_an_id_not_in_the_cache_or_not_an_id_is_said_so_and_a_local_folder_of_its_name_is_never_read(
    hub_cache, tmp_path, monkeypatch
):
    with pytest.raises(
        data.DataError, match=r"“acme/nothing” is not on this machine\. Download it into HF_HOME"
    ):
        list(data.records("hf:acme/nothing"))
    (tmp_path / "var" / "projects").mkdir(parents=True)  # datasets.load_dataset would read this folder
    (tmp_path / "var" / "projects" / "secret.jsonl").write_text('{"prompt": "p", "completion": "c"}\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(data.DataError, match="“var/projects” is not on this machine"):
        list(data.records("hf:var/projects"))
    with pytest.raises(data.DataError, match="is not a Hugging Face dataset id"):
        data.hub_snapshot("../../etc")


@pytest.fixture
def wizard(client, alice, alice_project, tiny_model, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    Draft.objects.create(project=alice_project, user=alice,
                         data={"model": str(tiny_model / "partial"), "label": "tiny"})  # fmt: skip
    client.force_login(alice)
    return reverse("wizard-data", kwargs={"project_id": alice_project.pk})


def test_the_data_step_imports_a_split_as_a_project_dataset_the_way_an_upload_is_kept(
    client, wizard, hub_cache, alice_project
):
    answer = client.post(wizard, {"hub_id": "https://huggingface.co/datasets/acme/arith", "hub_split": "train",
                                  "eval_choice": "auto", "go": "check"}, follow=True)  # fmt: skip
    assert answer.status_code == 200
    dataset = Dataset.objects.get(project=alice_project)
    assert dataset.name == "acme/arith (train)" and dataset.file.name == "rows.parquet"
    # The project's own copy: a later change to the cache changes nothing here.
    assert hub_cache not in dataset.file.parents
    assert pq.read_table(dataset.file).to_pylist() == TRAIN
    assert dataset.rows == 30 and dataset.survey["format"] == "question-answer"
    assert dataset.checks["sft"]["ok"] and dataset.checks["rlvr"]["ok"]
    page = answer.content.decode()
    assert (
        f"From this machine&#x27;s Hugging Face cache: acme/arith, split train, revision {COMMIT[:12]}."
        in page
    )
    assert Draft.objects.get(project=alice_project).data["dataset_key"] == f"dataset:{dataset.pk}"
    assert "What is 2 + 2?" in page  # the preview, through the model's chat template
    detail = client.get(
        reverse("dataset-detail", kwargs={"project_id": alice_project.pk, "dataset_id": dataset.pk})
    )
    assert "revision " + COMMIT[:12] in detail.content.decode()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hub_id": "acme/nothing"}, "“acme/nothing” is not on this machine"),
        ({"hub_id": "acme/arith", "hub_split": "validation"}, "Unknown split &quot;validation&quot;"),
        ({"hub_id": "not an id"}, "is not a Hugging Face dataset id"),
        ({"hub_id": "acme/multi"}, "has several subsets: choose one of main, socratic"),
    ],
)
def test_an_import_that_cannot_be_made_is_said_beside_the_field_and_keeps_nothing(
    client, wizard, hub_cache, alice_project, settings, fields, message
):
    answer = client.post(wizard, {**fields, "eval_choice": "auto", "go": "check"})
    assert answer.status_code == 422
    assert message in answer.content.decode()
    assert 'data-testid="hub-import" open' in answer.content.decode()
    assert not Dataset.objects.exists()
    assert not any((settings.DATA_DIR / "projects").rglob("*.parquet"))


def test_the_datasets_page_imports_one_too_and_opens_its_page(client, wizard, hub_cache, alice_project):
    datasets = reverse("dataset-list", kwargs={"project_id": alice_project.pk})
    refused = client.post(datasets, {"hub_id": "acme/multi"})
    assert refused.status_code == 422 and "choose one of main, socratic" in refused.content.decode()
    answer = client.post(datasets, {"hub_id": "acme/multi", "hub_subset": "socratic"})
    dataset = Dataset.objects.get(project=alice_project)
    assert answer.status_code == 302 and answer["Location"].endswith(f"/datasets/{dataset.pk}/")
    assert dataset.name == "acme/multi (socratic, train)" and dataset.rows == 1
    assert "subset socratic, split train" in client.get(answer["Location"]).content.decode()
