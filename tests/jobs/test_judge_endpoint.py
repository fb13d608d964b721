"""A project's own endpoint as the judge, end to end with real parts: the endpoint served by the built-in
engine (the engine supervisor), the gateway under uvicorn, the training worker, and RLAIF chosen in the
wizard with nothing else changed. The only models here are the tiny reversal models, which cannot grade:
their replies hold no score, so the job must fail fast with the judge's own words, and the key made for
the run must be revoked after it. The choice itself: only the project's endpoints, by id (404 for any
other), never by a viewer."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from django.conf import settings
from django.urls import reverse

from apps.endpoints.models import ApiKey, Endpoint
from apps.endpoints.services import endpoint_deploy
from apps.jobs.models import Job, Kind, Status
from apps.jobs.services import job_create
from apps.projects.models import Role
from apps.projects.services import membership_add, project_create
from tests.endpoints.conftest import client_for, wait_ready
from tests.evaluations.conftest import trained_job
from tests.harness import wait_for_job
from workers.training import tiny
from workers.training.keys import JUDGE_KEY_ENV

RLVR_ROWS = str(tiny.DEMO / "reverse" / "rlvr.jsonl")
PROMPT: Any = [{"role": "user", "content": "reverse: c a t"}]


def _deploy_judge(project, user, tiny_model) -> Endpoint:
    return endpoint_deploy(project=project, user=user, model=str(tiny_model / "partial"), name="tiny-judge")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_judges_run_key_reaches_the_endpoint_through_the_gateway_only_until_it_is_revoked(
    alice, alice_project, tiny_model, asgi_server, engine_supervisor
):
    from workers.runner import _job_keys, _run_key, _run_key_revoke, training_spec
    from workers.training.judge import Judge

    endpoint = _deploy_judge(alice_project, alice, tiny_model)
    job = job_create(project=alice_project, user=alice, name="judged", auto_evaluate=False,
                     spec={"technique": "rlaif", "model": str(tiny_model / "partial"), "dataset": RLVR_ROWS,
                           "params": {"judge_endpoint": str(endpoint.pk), "judge_key": "secret:not-used"}})  # fmt: skip
    spec = training_spec(job)
    assert _job_keys(job, spec) == {}  # no secret: the key is made for the run
    params = spec["params"]
    assert params["judge_url"] == settings.GATEWAY_URL == f"{asgi_server}/v1"
    assert params["judge_model"] == "tiny-judge" and "judge_key" not in params
    assert "judge_url" not in job.spec["params"]  # the row keeps only the endpoint's id

    key, env = _run_key(job)
    assert (
        set(env) == {JUDGE_KEY_ENV}
        and key.name == f"judge for job #{job.pk}"
        and key.project == alice_project
    )
    wait_ready(endpoint.pk)
    verdict = Judge(
        params["judge_url"], params["judge_model"], "Reversed.", api_key=env[JUDGE_KEY_ENV]
    ).review(PROMPT, "t a c")
    # The chat request reached the tiny model through /v1; its text was read for a score and held none.
    assert verdict.value is None and "which holds no score from 0 to 10" in verdict.problem
    assert verdict.reasoning  # the model's own words
    api = client_for(asgi_server, env[JUDGE_KEY_ENV])
    assert api.chat.completions.create(model="tiny-judge", messages=PROMPT, max_tokens=4).choices

    _run_key_revoke(job, key)
    with pytest.raises(openai.AuthenticationError):
        api.chat.completions.create(model="tiny-judge", messages=PROMPT, max_tokens=4)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_rlaif_judged_by_a_project_endpoint_that_cannot_grade_fails_fast_with_the_judges_words(
    client, alice, alice_project, tiny_model, settings, asgi_server, engine_supervisor, celery_worker,
    celery_trainer,
):  # fmt: skip
    settings.DATA_DIR = tiny_model.parent.parent  # the test data folder, where the tiny model is built
    endpoint = _deploy_judge(alice_project, alice, tiny_model)
    wait_ready(endpoint.pk)
    client.force_login(alice)

    def url(step: str) -> str:
        return reverse(f"wizard-{step}", kwargs={"project_id": alice_project.pk})

    assert client.post(url("model"), {"source": "partial"}).status_code == 302
    data = {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "auto", "go": "next"}
    assert client.post(url("data"), data).status_code == 302
    page = client.get(url("technique"), {"technique": "rlaif"}).content.decode()
    assert f'<option value="{endpoint.pk}">tiny-judge (' in page
    # The judge chosen from the list; every other setting as the wizard offers it (automatic).
    chosen = client.post(
        url("technique"), {"technique": "rlaif", "t-method": "lora", "p-judge_endpoint": endpoint.pk}
    )
    assert chosen.status_code == 302, chosen.content.decode()[-2000:]
    assert client.post(url("review"), {"name": "judged by an endpoint"}).status_code == 302
    job = Job.objects.get(kind=Kind.TRAINING)
    assert job.spec["params"] == {"judge_endpoint": str(endpoint.pk)}  # no URL and no key in the row
    assert not job.spec["training"].get("max_steps") and not job.spec["training"].get("learning_rate")

    started = time.monotonic()
    job = wait_for_job(job, timeout=300)
    took = time.monotonic() - started
    assert job.status == Status.FAILED, (job.status, job.error, job.log_tail[-1500:])
    assert (
        job.error.startswith("The judge answered “") and "which holds no score from 0 to 10" in job.error
    ), job.error
    assert "choose a judge model that can grade" in job.error
    assert job.step == 0 and took < 240, (job.step, took)  # on its first batch, not after the whole plan

    # The judge was asked through the gateway with the run's key, which is revoked now.
    key = ApiKey.objects.get(project=alice_project, name=f"judge for job #{job.pk}")
    assert key.revoked_at is not None and key.last_used_at is not None
    endpoint.refresh_from_db()
    assert endpoint.requests >= 8 and endpoint.completion_tokens > 0


@pytest.mark.django_db
def test_the_wizard_and_the_evaluation_form_offer_only_the_projects_endpoints_and_404_any_other(
    client, alice, alice_project, bob, tiny_model, settings
):
    settings.DATA_DIR = tiny_model.parent.parent
    mine = _deploy_judge(alice_project, alice, tiny_model)
    theirs_project = project_create(user=bob, name="Elsewhere")
    theirs = endpoint_deploy(
        project=theirs_project, user=bob, model=str(tiny_model / "base"), name="their-judge"
    )
    client.force_login(alice)
    wizard = reverse("wizard-technique", kwargs={"project_id": alice_project.pk})
    client.post(reverse("wizard-model", kwargs={"project_id": alice_project.pk}), {"source": "partial"})
    client.post(reverse("wizard-data", kwargs={"project_id": alice_project.pk}),
                {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "none", "go": "next"})  # fmt: skip
    page = client.get(wizard, {"technique": "rlaif"}).content.decode()
    assert "tiny-judge" in page and "their-judge" not in page
    refused = client.post(wizard, {"technique": "rlaif", "t-method": "lora", "p-judge_endpoint": theirs.pk})
    assert refused.status_code == 404
    both = client.post(wizard, {"technique": "rlaif", "t-method": "lora", "p-judge_endpoint": mine.pk,
                                "p-judge_url": "http://127.0.0.1:9/v1", "p-judge_model": "j"})  # fmt: skip
    assert both.status_code == 422 and "Choose the judge once" in both.content.decode()

    training = trained_job(alice_project, alice, tiny_model / "partial")
    evaluations = reverse("evaluation-list", args=[alice_project.pk])
    form = {"candidate": training.pk, "baseline": "base", "dataset": "heldout", "graders": ["exact_match"],
            "judge_scores": "on", "max_rows": 10, "max_new_tokens": 8}  # fmt: skip
    page = client.get(evaluations).content.decode()
    assert "tiny-judge" in page and "their-judge" not in page
    assert client.post(evaluations, {**form, "judge_endpoint": theirs.pk}).status_code == 404
    assert not Job.objects.filter(kind=Kind.EVALUATION).exists()
    assert client.post(evaluations, {**form, "judge_endpoint": mine.pk}).status_code == 302
    evaluation = Job.objects.get(kind=Kind.EVALUATION)
    assert evaluation.spec["judge"] == {"endpoint": mine.pk, "base_url": "", "model": "", "scores": True,
                                        "pairwise": False}  # fmt: skip

    # The evaluation's runner fills the gateway and the endpoint's name; the key is made for the run.
    from workers.runner import _job_keys, _run_key, training_spec

    spec = training_spec(evaluation)
    assert _job_keys(evaluation, spec) == {}
    assert spec["judge"]["base_url"] == settings.GATEWAY_URL and spec["judge"]["model"] == "tiny-judge"
    assert spec["judge"]["api_key_env"] == JUDGE_KEY_ENV
    key, env = _run_key(evaluation)
    assert key.name == f"judge for job #{evaluation.pk}" and set(env) == {JUDGE_KEY_ENV}


@pytest.mark.django_db
def test_a_viewer_cannot_pick_a_judge(client, alice, alice_project, bob, tiny_model):
    mine = _deploy_judge(alice_project, alice, tiny_model)
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.VIEWER)
    training = trained_job(alice_project, alice, tiny_model / "partial")
    client.force_login(bob)
    wizard = reverse("wizard-technique", kwargs={"project_id": alice_project.pk})
    assert client.post(wizard, {"technique": "rlaif", "p-judge_endpoint": mine.pk}).status_code == 403
    refused = client.post(reverse("evaluation-list", args=[alice_project.pk]),
                          {"candidate": training.pk, "judge_endpoint": mine.pk})  # fmt: skip
    assert refused.status_code == 403 and not Job.objects.filter(kind=Kind.EVALUATION).exists()


@pytest.mark.django_db
def test_a_judge_endpoint_undeployed_before_the_run_fails_the_job_with_words(
    alice, alice_project, bob, tiny_model
):
    from apps.secrets.services import KeyUnavailable
    from workers.runner import _job_keys, training_spec

    endpoint = _deploy_judge(alice_project, alice, tiny_model)
    job = job_create(project=alice_project, user=alice, name="judged", auto_evaluate=False,
                     spec={"technique": "rlaif", "model": str(tiny_model / "partial"), "dataset": RLVR_ROWS,
                           "params": {"judge_endpoint": str(endpoint.pk)}})  # fmt: skip
    Endpoint.objects.filter(pk=endpoint.pk).update(active=False)
    with pytest.raises(KeyUnavailable, match="is not deployed in this project any more"):
        _job_keys(job, training_spec(job))
    elsewhere = project_create(user=bob, name="Bob's")
    theirs = endpoint_deploy(project=elsewhere, user=bob, model=str(tiny_model / "base"), name="bobs")
    job.spec["params"]["judge_endpoint"] = str(theirs.pk)  # a row edited by hand: another project's id
    with pytest.raises(KeyUnavailable, match="is not deployed in this project"):
        _job_keys(job, training_spec(job))


@pytest.mark.django_db
def test_a_url_judges_key_typed_once_is_kept_encrypted_as_a_project_secret_and_never_shown_again(
    client, alice, alice_project, tiny_model, settings
):
    from apps.secrets import crypto
    from apps.secrets.models import ProjectSecret

    settings.DATA_DIR = tiny_model.parent.parent
    client.force_login(alice)
    pid = alice_project.pk
    client.post(reverse("wizard-model", kwargs={"project_id": pid}), {"source": "partial"})
    client.post(reverse("wizard-data", kwargs={"project_id": pid}),
                {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "none", "go": "next"})  # fmt: skip
    wizard = reverse("wizard-technique", kwargs={"project_id": pid})
    typed = "sk-typed-once-0123456789"
    saved = client.post(wizard, {"technique": "rlaif", "t-method": "lora", "p-judge_url": "https://93.184.216.34/v1",
                                 "p-judge_model": "grader", "p-judge_new_key": typed})  # fmt: skip
    assert saved.status_code == 302, saved.content.decode()[-2000:]
    secret = ProjectSecret.objects.get(project=alice_project, name="judge-93.184.216.34")
    assert crypto.decrypt(secret.ciphertext) == typed and typed.encode() not in bytes(secret.ciphertext)
    from apps.jobs.models import Draft

    draft = Draft.objects.get(project=alice_project, user=alice)
    assert draft.data["params"]["judge_key"] == "secret:judge-93.184.216.34" and typed not in str(draft.data)
    page = client.get(wizard, {"technique": "rlaif"}).content.decode()
    assert typed not in page and 'value="secret:judge-93.184.216.34" selected' in page

    training = trained_job(alice_project, alice, tiny_model / "partial")
    evaluations = reverse("evaluation-list", args=[pid])
    again = "sk-rotated-9876543210"
    client.post(evaluations, {"candidate": training.pk, "baseline": "base", "dataset": "heldout", "max_rows": 5,
                              "max_new_tokens": 8, "judge_url": "https://93.184.216.34/v1", "judge_model": "grader",
                              "judge_new_key": again, "judge_scores": "on"})  # fmt: skip
    evaluation = Job.objects.get(kind=Kind.EVALUATION)
    assert evaluation.spec["judge"]["key"] == "secret:judge-93.184.216.34" and again not in str(
        evaluation.spec
    )
    secret.refresh_from_db()
    assert crypto.decrypt(secret.ciphertext) == again  # typed again for the same judge: the key rotated
    refused = client.post(wizard, {"technique": "rlaif", "t-method": "lora", "p-judge_new_key": typed})
    assert refused.status_code == 422 and "A typed key is for a judge at a URL" in refused.content.decode()


@pytest.mark.django_db
def test_an_rlaif_jobs_automatic_evaluation_is_judged_by_the_same_endpoint_with_a_key_of_its_own(
    alice, alice_project, tiny_model
):
    from apps.evaluations.services import spec_for_job

    endpoint = _deploy_judge(alice_project, alice, tiny_model)
    training = trained_job(alice_project, alice, tiny_model / "partial", technique="rlaif")
    training.spec["params"] = {"judge_endpoint": str(endpoint.pk), "rubric": "Reversed."}
    judge = spec_for_job(training)["judge"]
    assert judge == {"endpoint": endpoint.pk, "base_url": "", "model": "", "rubric": "Reversed."}
