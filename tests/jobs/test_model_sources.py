"""Everything a job makes belongs to its project: a path typed into any field that chooses a model reaches
only the folders an administrator offers (ATELIER_MODEL_DIRS), never the data folder, and gets the same
message whether the path exists or not; earlier jobs' models are chosen by job, 404 outside the project;
only Hugging Face ids (and the hub's own https addresses) are model ids."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.endpoints.models import Endpoint
from apps.jobs.models import Draft, Job, Status
from apps.jobs.services import job_create
from apps.projects.services import project_create
from workers.training import tiny

pytestmark = pytest.mark.django_db
REVERSE = tiny.DEMO / "reverse"


@pytest.fixture
def model_dir(tiny_model) -> Iterator[Path]:
    """A folder of its own inside the offered directory (tests/settings.py sets ATELIER_MODEL_DIRS)."""
    offered = Path(settings.MODEL_DIRS[0])
    folder = offered / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _fake_adapter(folder: Path, base: str) -> Path:
    """An adapter folder as a job writes one (its config names its base); enough for the checks, which
    refuse it for where it is, not for what it holds."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": base, "peft_type": "LORA"})
    )
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


@pytest.fixture
def alice_job(alice, alice_project, tiny_model) -> Job:
    """A succeeded job of alice's with an adapter in its output folder, as the worker leaves it."""
    spec = {"technique": "sft", "model": str(tiny_model / "partial"), "dataset": str(REVERSE / "sft.jsonl")}
    job = job_create(project=alice_project, user=alice, name="alice's secret", spec=spec, auto_evaluate=False)
    adapter = _fake_adapter(job.output_dir / "adapter", str(tiny_model / "partial"))
    Job.objects.filter(pk=job.pk).update(
        status=Status.SUCCEEDED, artifacts={"adapter": str(adapter)}, finished_at=timezone.now()
    )
    job.refresh_from_db()
    return job


@pytest.fixture
def bob_project(bob):
    return project_create(user=bob, name="Bob's bot", description="")


# Every field where a person types a model: (name, url name, the POST data around it, the field).
FIELDS = [
    ("wizard folder", "wizard-model", {"source": "local"}, "local_path"),
    ("wizard hub id", "wizard-model", {"source": "hub"}, "hub_id"),
    ("deploy", "endpoint-list", {}, "model"),
    ("teacher", "generation-new", {"technique": "sft", "teacher": "local"}, "teacher_local"),
    ("weaker model", "generation-new",
     {"technique": "dpo", "teacher": "local", "teacher_local": "atelier-tiny/partial"}, "weak_local"),
]  # fmt: skip


def _field_errors(client, project, url_name: str, data: dict, field: str, value: str) -> list[str]:
    post = {"description": "Reverse words.", "rows": "5", **data, field: value}
    response = client.post(reverse(url_name, args=[project.pk]), post)
    assert response.status_code in (200, 422), (url_name, response.status_code)
    return [str(e) for e in response.context["form"].errors.get(field, [])]


def _same_as_missing(client, project, url_name, data, field, value: str) -> None:
    """The value is refused with exactly the message a path that exists nowhere gets."""
    # A missing path of the same shape: absolute or relative, as the value is.
    # (A relative path that climbs, as a data folder outside the checkout gives, climbs too.)
    shape = "/" if value.startswith(("/", "~")) else "../" if value.startswith("../") else ""
    missing = f"{shape}nowhere/{uuid.uuid4().hex}/jobs/adapter"
    refused = _field_errors(client, project, url_name, data, field, value)
    expected = _field_errors(client, project, url_name, data, field, missing)
    assert refused, f"{field} accepted {value}"
    assert [_typed_as_x(e, value) for e in refused] == [_typed_as_x(e, missing) for e in expected]


def _typed_as_x(error: str, typed: str) -> str:
    """The message with the typed text (and only that: a data folder path is a prefix of others) as X."""
    return error.replace(f" at {typed} ", " at X ").replace(f"“{typed}”", "“X”")


@pytest.mark.parametrize(("name", "url_name", "data", "field"), FIELDS, ids=[f[0] for f in FIELDS])
@pytest.mark.parametrize("who", ["bob", "alice"])
def test_a_jobs_output_and_adapter_paths_are_refused_in_every_field_like_a_missing_path(
    client, who, name, url_name, data, field, alice, bob, alice_project, bob_project, alice_job
):
    user, project = (bob, bob_project) if who == "bob" else (alice, alice_project)
    client.force_login(user)
    for value in (str(alice_job.output_dir), alice_job.model_artifact, alice_job.model_artifact + "/"):
        _same_as_missing(client, project, url_name, data, field, value)
    assert not Endpoint.objects.exists() and not Job.objects.exclude(pk=alice_job.pk).exists()
    assert not any(d.data.get("model") for d in Draft.objects.all())


@pytest.mark.parametrize(("name", "url_name", "data", "field"), FIELDS, ids=[f[0] for f in FIELDS])
def test_system_folders_tricks_and_the_data_folder_are_refused_like_a_missing_path(
    client, name, url_name, data, field, alice, alice_project, alice_job, model_dir, tiny_model
):
    client.force_login(alice)
    (model_dir / "to-etc").symlink_to("/etc")
    (model_dir / "to-job").symlink_to(alice_job.model_artifact)
    data_dir = Path(settings.DATA_DIR)
    hostile = [
        "/etc", "/etc/passwd", "~", str(data_dir), str(data_dir / "jobs"), str(tiny_model / "partial"),
        str(model_dir / "to-etc"), str(model_dir / "to-job"), f"{model_dir}/../../../../../../etc",
        f"{model_dir}/..{os.sep}..{os.sep}{data_dir.name}/models/atelier-tiny/partial",
        os.path.relpath(alice_job.model_artifact),
    ]  # fmt: skip
    for value in hostile:
        _same_as_missing(client, alice_project, url_name, data, field, value)


@pytest.mark.parametrize(("name", "url_name", "data", "field"), FIELDS, ids=[f[0] for f in FIELDS])
def test_file_and_other_schemes_are_not_model_ids(
    client, name, url_name, data, field, alice, alice_project, tiny_model
):
    client.force_login(alice)
    for value in ("file:///etc/passwd", "FILE:/etc/passwd", "s3://bucket/model", "ftp://example.com/a/b",
                  "https://example.com/org/name", "http://127.0.0.1:5000/org/name"):  # fmt: skip
        errors = _field_errors(client, alice_project, url_name, data, field, value)
        assert errors, f"{field} accepted {value}"
    errors = _field_errors(client, alice_project, "endpoint-list", {}, "model", "file:///etc/passwd")
    assert "“file:” addresses are not models" in errors[0]
    assert not Endpoint.objects.exists()


def test_a_folder_outside_the_offered_directories_says_where_models_come_from(client, alice, alice_project):
    client.force_login(alice)
    errors = _field_errors(client, alice_project, "wizard-model", {"source": "local"}, "local_path", "/etc")
    assert errors == [
        f"No model folder at /etc among the folders this server offers. Model folders come from {settings.MODEL_DIRS[0]}."
    ]


def test_a_server_that_offers_no_folders_refuses_every_path(
    client, alice, alice_project, model_dir, settings
):
    shutil.copytree(Path(settings.DATA_DIR) / "models" / "atelier-tiny" / "partial", model_dir / "tiny")
    settings.MODEL_DIRS = []
    client.force_login(alice)
    errors = _field_errors(client, alice_project, "wizard-model", {"source": "local"}, "local_path",
                           str(model_dir / "tiny"))  # fmt: skip
    assert errors and "offers no model folders" in errors[0] and "ATELIER_MODEL_DIRS" in errors[0]


def test_an_offered_folder_without_a_model_or_with_a_base_from_elsewhere_is_named(
    client, alice, alice_project, model_dir, alice_job
):
    client.force_login(alice)
    (model_dir / "empty").mkdir()
    _fake_adapter(model_dir / "stray", alice_job.model_artifact)  # an adapter whose base is alice's job
    _fake_adapter(model_dir / "hub", "file:///etc/passwd")
    local = ("wizard-model", {"source": "local"}, "local_path")
    assert "holds no model" in _field_errors(client, alice_project, *local, str(model_dir / "empty"))[0]
    for stray in ("stray", "hub"):
        error = _field_errors(client, alice_project, *local, str(model_dir / stray))[0]
        assert "is for a base model this server does not offer" in error, error


def test_the_rlaif_reward_model_is_vetted_like_every_model_field(
    client, alice, alice_project, alice_job, model_dir
):
    client.force_login(alice)
    client.post(reverse("wizard-model", args=[alice_project.pk]), {"source": "partial"})
    client.post(reverse("wizard-data", args=[alice_project.pk]),
                {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "none", "go": "next"})  # fmt: skip

    def errors(value: str) -> list[str]:
        response = client.post(reverse("wizard-technique", args=[alice_project.pk]),
                               {"technique": "rlaif", "t-method": "lora", "p-reward_model": value})  # fmt: skip
        return [str(e) for e in response.context["params_form"].errors.get("reward_model", [])]

    missing = f"/nowhere/{uuid.uuid4().hex}"
    expected = [_typed_as_x(e, missing) for e in errors(missing)]
    assert expected and "No model folder at X " in expected[0]
    for value in (alice_job.model_artifact, str(alice_job.output_dir), "/etc"):
        assert [_typed_as_x(e, value) for e in errors(value)] == expected
    assert "addresses are not models" in errors("file:///etc/passwd")[0]
    assert not Draft.objects.get().data.get("technique")


def test_another_projects_job_is_a_404_wherever_a_job_is_chosen(client, bob, bob_project, alice_job):
    client.force_login(bob)
    wizard = client.post(reverse("wizard-model", args=[bob_project.pk]), {"source": f"job:{alice_job.pk}"})
    deploy = client.post(reverse("model-deploy", args=[bob_project.pk]), {"source": f"job:{alice_job.pk}"})
    on_job = client.post(reverse("job-deploy", args=[bob_project.pk, alice_job.pk]))
    assert (wizard.status_code, deploy.status_code, on_job.status_code) == (404, 404, 404)
    assert not Endpoint.objects.exists() and not any(d.data.get("model") for d in Draft.objects.all())


def test_a_hub_address_on_the_configured_hub_is_taken_as_its_id(client, alice, alice_project):
    from apps.jobs import model_sources

    assert (
        model_sources.hub_id("https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct")
        == "Qwen/Qwen2.5-0.5B-Instruct"
    )
    assert model_sources.typed_model("atelier-tiny/base").endswith("models/atelier-tiny/base")
    for bad in ("Qwen/../etc", "a/b/c", "/Qwen", ".hidden/x", "org/name.", "a b/c"):
        with pytest.raises(Exception, match="not a Hugging Face model id"):
            model_sources.hub_id(bad)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_offered_folder_trains_and_a_chain_chosen_by_job_trains_on_it_and_serves_on_its_base(
    client, alice, alice_project, model_dir, tiny_model, celery_trainer
):
    from apps.endpoints.services import endpoint_deploy
    from tests.jobs.test_worker import _wait

    shutil.copytree(tiny_model / "partial", model_dir / "tiny-copy")
    (model_dir / "link").symlink_to(model_dir / "tiny-copy")  # a link that stays inside is fine
    client.force_login(alice)

    def launch(model: dict, name: str) -> Job:
        url = lambda step: reverse(f"wizard-{step}", args=[alice_project.pk])  # noqa: E731
        response = client.post(url("model"), model)
        assert response.status_code == 302, response.context["form"].errors
        assert client.post(url("data"), {"dataset": "demo:reverse/sft.jsonl", "eval_choice": "none",
                                         "go": "next"}).status_code == 302  # fmt: skip
        response = client.post(url("technique"), {"technique": "sft", "t-method": "lora", "t-max_steps": "4",
                                                  "t-batch_size": "4"})  # fmt: skip
        assert response.status_code == 302
        review = client.get(url("review")).content.decode()
        assert "4 steps" in review and " GB (weights" in review  # the estimate, from the folder's config
        client.post(url("review"), {"name": name})
        return _wait(Job.objects.get(name=name), lambda j: j.ended)

    first = launch({"source": "local", "local_path": str(model_dir / "link")}, "from the folder")
    assert first.status == Status.SUCCEEDED, (first.error, first.log_tail[-2000:])
    assert first.spec["model"] == str((model_dir / "tiny-copy").resolve())  # the real path, link resolved
    chained = launch({"source": f"job:{first.pk}"}, "chained")
    assert chained.status == Status.SUCCEEDED, (chained.error, chained.log_tail[-2000:])
    assert chained.spec["model"] == first.model_artifact  # trained on the first job's model
    endpoint = endpoint_deploy(project=alice_project, user=alice, job=chained)
    adapter = Path(str(chained.model_artifact))
    recorded = json.loads((adapter / "adapter_config.json").read_text())
    assert endpoint.adapter == str(adapter.resolve())
    assert endpoint.base == str(Path(recorded["base_model_name_or_path"]).resolve())
    # The chained adapter sits on the first job's adapter merged into the folder's model (its merged/),
    # not on the folder's model itself, which the first job's own adapter names.
    assert endpoint.base == str((first.output_dir / "merged").resolve())
    first_config = json.loads((Path(str(first.model_artifact)) / "adapter_config.json").read_text())
    assert first_config["base_model_name_or_path"] == str((model_dir / "tiny-copy").resolve())
