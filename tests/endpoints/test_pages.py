"""Deploying from a job and from the catalog, the endpoint pages, API keys shown once and stored hashed,
and the exports, through Django's test client (the engines are the supervisor's: tests/endpoints/
test_supervisor.py and test_gateway.py)."""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse

from apps.endpoints import exports
from apps.endpoints.models import ApiKey, Endpoint, Engine
from apps.endpoints.services import endpoint_deploy
from apps.jobs.models import Job, Status
from apps.projects.models import Role
from apps.projects.services import membership_add, project_create
from tests.evaluations.conftest import trained_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def adapter_job(alice, alice_project, lora_adapter, tiny_model) -> Job:
    return trained_job(alice_project, alice, lora_adapter, base=str(tiny_model / "partial"))


def _artifact_is_adapter(job: Job, adapter) -> Job:
    """The job's adapter in the job's own folder, as training saves it: its merge (`merged/`, beside
    it) is then this job's alone, not shared with every test that uses the session's adapter."""
    own = job.output_dir / "adapter"
    shutil.copytree(adapter, own, dirs_exist_ok=True)
    Job.objects.filter(pk=job.pk).update(artifacts={"adapter": str(own)})
    job.refresh_from_db()
    return job


def test_deploy_on_a_finished_job_makes_one_endpoint_for_its_adapter_on_its_base(
    client, alice, adapter_job, lora_adapter, tiny_model
):
    job = _artifact_is_adapter(adapter_job, lora_adapter)
    client.force_login(alice)
    page = client.get(reverse("job-detail", args=[job.project_id, job.pk])).content.decode()
    assert 'data-testid="deploy"' in page
    response = client.post(reverse("job-deploy", args=[job.project_id, job.pk]))
    endpoint = Endpoint.objects.get(job=job)
    assert response.url == reverse("endpoint-detail", args=[job.project_id, endpoint.pk])
    assert endpoint.adapter == str(Path(job.model_artifact or "").resolve()) and endpoint.base == str(
        (tiny_model / "partial").resolve()
    )
    assert endpoint.status == "pending" and endpoint.engine and endpoint.engine.base == endpoint.base
    client.post(reverse("job-deploy", args=[job.project_id, job.pk]))  # a second click: the same endpoint
    assert Endpoint.objects.filter(job=job).count() == 1
    detail = client.get(response.url).content.decode()
    assert endpoint.name in detail and "Download the adapter" in detail and "/v1/chat/completions" in detail
    # A second adapter on the same base shares the engine (one process per base model).
    other = endpoint_deploy(project=job.project, user=alice, model=str(lora_adapter), name="again")
    assert other.engine_id == endpoint.engine_id and Engine.objects.count() == 1


def test_a_job_without_a_model_cannot_be_deployed_and_the_page_says_why(client, alice, adapter_job):
    Job.objects.filter(pk=adapter_job.pk).update(status=Status.FAILED)
    client.force_login(alice)
    response = client.post(reverse("job-deploy", args=[adapter_job.project_id, adapter_job.pk]), follow=True)
    assert "Only a training job that succeeded has a model to deploy." in response.content.decode()
    assert not Endpoint.objects.exists()


def test_viewers_cannot_deploy_and_strangers_see_nothing(client, alice, bob, alice_project, adapter_job):
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.VIEWER)
    client.force_login(bob)
    assert client.post(reverse("job-deploy", args=[alice_project.pk, adapter_job.pk])).status_code == 403
    endpoint = endpoint_deploy(project=alice_project, user=alice, job=adapter_job)
    stranger_project = project_create(user=bob, name="Bob's")
    assert client.get(reverse("endpoint-detail", args=[stranger_project.pk, endpoint.pk])).status_code == 404


def test_the_catalog_deploys_the_tiny_model_and_explains_a_model_that_is_not_here(
    client, alice, alice_project, tiny_model
):
    client.force_login(alice)
    catalog = client.get(reverse("model-catalog", args=[alice_project.pk])).content.decode()
    assert "Built-in tiny model (partial)" in catalog and "Qwen/Qwen2.5-0.5B-Instruct" in catalog
    response = client.post(reverse("model-deploy", args=[alice_project.pk]), {"source": "partial"})
    endpoint = Endpoint.objects.get()
    assert response.url.endswith(f"/endpoints/{endpoint.pk}/") and endpoint.name == "partial"
    missing = client.post(
        reverse("model-deploy", args=[alice_project.pk]),
        {"source": "catalog:Qwen/Qwen2.5-0.5B-Instruct"},
        follow=True,
    ).content.decode()
    assert "cannot be reached" in missing or "not on this machine" in missing
    form = client.post(reverse("endpoint-list", args=[alice_project.pk]), {"model": "/no/such/folder"})
    assert "No model folder at /no/such/folder" in form.content.decode()
    assert Endpoint.objects.count() == 1


def test_a_new_key_is_shown_once_and_only_its_hash_is_stored(client, alice, alice_project):
    client.force_login(alice)
    client.post(reverse("api-key-new", args=[alice_project.pk]), {"name": "support app"})
    page = client.get(reverse("endpoint-list", args=[alice_project.pk])).content.decode()
    key = (
        page.split('data-testid="new-key-value" data-select-on-click')[0]
        .rsplit('value="', 1)[1]
        .split('"')[0]
    )
    assert key.startswith("atl-") and len(key) > 40
    stored = ApiKey.objects.get()
    assert stored.digest == hashlib.sha256(key.encode()).hexdigest() and key not in (
        stored.prefix,
        stored.digest,
    )
    again = client.get(reverse("endpoint-list", args=[alice_project.pk])).content.decode()
    assert key not in again and "support app" in again
    client.post(reverse("api-key-revoke", args=[alice_project.pk, stored.pk]))
    assert ApiKey.objects.get().revoked_at is not None


def test_the_adapter_downloads_as_a_zip_of_safetensors_and_configs(client, alice, adapter_job, lora_adapter):
    job = _artifact_is_adapter(adapter_job, lora_adapter)
    endpoint = endpoint_deploy(project=job.project, user=alice, job=job)
    client.force_login(alice)
    response = client.get(reverse("endpoint-export", args=[job.project_id, endpoint.pk, "adapter"]))
    assert response["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    assert f"{endpoint.name}-adapter/adapter_model.safetensors" in names
    assert f"{endpoint.name}-adapter/adapter_config.json" in names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    assert (
        client.get(reverse("endpoint-export", args=[job.project_id, endpoint.pk, "merged"])).status_code
        == 404
    )


def test_merging_makes_a_full_model_that_answers_like_the_adapter(alice, adapter_job, lora_adapter):
    from workers.training.generation import generate
    from workers.training.models import load_model, load_tokenizer
    from workers.training.spec import ModelRef

    job = _artifact_is_adapter(adapter_job, lora_adapter)
    endpoint = endpoint_deploy(project=job.project, user=alice, job=job)
    exports.merge(endpoint.pk)  # what the worker task runs: the training layer's merge, in a subprocess
    merged = exports.available(endpoint)["merged"]
    prompts = [[{"role": "user", "content": f"reverse: {w}"}] for w in ("c a t", "h o u s e", "t r e e")]
    outputs = [
        generate(load_model(ModelRef(m)), load_tokenizer(ModelRef(m)), prompts)
        for m in (str(lora_adapter), merged)
    ]
    assert outputs[0] == outputs[1]


def test_pushing_to_an_unreachable_hub_says_so_on_the_page(
    client, alice, adapter_job, lora_adapter, monkeypatch
):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: the hub is unreachable
    job = _artifact_is_adapter(adapter_job, lora_adapter)
    endpoint = endpoint_deploy(project=job.project, user=alice, job=job)
    client.force_login(alice)
    url = reverse("endpoint-push", args=[job.project_id, endpoint.pk])
    page = client.post(url, {"what": "adapter", "repo_id": "alice/reverser", "token": "hf_x"}, follow=True)
    text = page.content.decode()
    assert (
        "The Hugging Face Hub cannot be reached from this server" in text
        and 'data-testid="hub-error"' in text
    )
    bad = client.post(
        url, {"what": "adapter", "repo_id": "no slash", "token": "hf_x"}, follow=True
    ).content.decode()
    assert "owner/name" in bad


def test_the_endpoint_and_job_pages_show_the_chain_a_model_was_trained_through(
    client, alice, alice_project, bob, lora_adapter, tiny_model
):
    """A job trained from an earlier job's model names that job's folder in its spec; the pages walk
    those back to the base model. Another project's job with the same folder layout is no link."""
    from apps.jobs.lineage import job_lineage

    sft = _artifact_is_adapter(
        trained_job(alice_project, alice, lora_adapter, base=str(tiny_model / "partial")), lora_adapter
    )
    dpo = _artifact_is_adapter(
        trained_job(alice_project, alice, lora_adapter, base=str(sft.model_artifact), technique="dpo"),
        lora_adapter,
    )
    rlvr = _artifact_is_adapter(
        trained_job(alice_project, alice, lora_adapter, base=str(dpo.model_artifact), technique="rlvr"),
        lora_adapter,
    )
    assert [link.label for link in job_lineage(rlvr)] == [
        "atelier-tiny/partial", f"SFT #{sft.pk}", f"DPO #{dpo.pk}", f"RLVR #{rlvr.pk}"
    ]  # fmt: skip
    endpoint = endpoint_deploy(project=alice_project, user=alice, job=rlvr)
    client.force_login(alice)
    page = client.get(reverse("endpoint-detail", args=[alice_project.pk, endpoint.pk])).content.decode()
    chain = page.split('data-testid="model-chain">')[1].split("</span>")[0]
    links = [reverse("job-detail", args=[alice_project.pk, j.pk]) for j in (sft, dpo, rlvr)]
    assert (
        chain.index("atelier-tiny/partial")
        < chain.index(links[0])
        < chain.index(links[1])
        < chain.index(links[2])
    )
    assert f">DPO #{dpo.pk}</a> → <a" in chain
    job_page = client.get(reverse("job-detail", args=[alice_project.pk, rlvr.pk])).content.decode()
    assert 'data-testid="model-chain"' in job_page and f"SFT #{sft.pk}" in job_page
    # A job that started from a base model: its page already names the base, so no chain line.
    assert (
        'data-testid="model-chain"'
        not in client.get(reverse("job-detail", args=[alice_project.pk, sft.pk])).content.decode()
    )
    # Bob's job pointing at Alice's folder does not reach into her project's jobs.
    theirs = project_create(user=bob, name="Bob's")
    stolen = trained_job(theirs, bob, lora_adapter, base=str(dpo.model_artifact), technique="rlvr")
    assert [link.job for link in job_lineage(stolen)] == [None, stolen]
