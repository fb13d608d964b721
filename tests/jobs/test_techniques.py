"""DPO, RLVR and RLAIF each go from the wizard's services (a draft, the checks, the launch) through the
real training worker to a succeeded job."""

from __future__ import annotations

import pytest

from apps.jobs import wizard
from apps.jobs.models import Job, Status
from apps.jobs.services import job_create
from tests.harness import wait_for_job
from workers.training import tiny

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
REVERSE = tiny.DEMO / "reverse"


def _launch(project, user, technique: str, dataset: str, params: dict, steps: int) -> Job:
    draft = wizard.draft_for(project=project, user=user)
    model = wizard.model_choose(project=project, user=user, source="partial")
    source = wizard.dataset_source(project, f"demo:reverse/{dataset}")
    wizard.draft_save(draft, **model, dataset=source["path"], dataset_label=source["label"], eval_choice="auto",
                      technique=technique, params=params,
                      training={"method": "lora", "max_steps": steps, "batch_size": 8})  # fmt: skip
    estimate = wizard.review(draft)
    spec = wizard.materialize(draft)
    # No automatic evaluation: these tests are about training, and an evaluation queued first on the one
    # training worker would delay the next test's job.
    return job_create(project=project, user=user, name=technique, spec=spec, estimate=estimate,
                      compute_class=estimate["estimate"]["compute_class"], auto_evaluate=False)  # fmt: skip


@pytest.fixture
def tiny_in_data_dir(settings, tiny_model):
    settings.DATA_DIR = tiny_model.parent.parent
    return tiny_model


def test_dpo_from_the_wizard_succeeds_on_the_worker(
    alice, alice_project, tiny_in_data_dir, celery_trainer, mlflow_service
):
    job = wait_for_job(_launch(alice_project, alice, "dpo", "dpo.jsonl", {"beta": 0.1}, 10), timeout=240)
    assert job.status == Status.SUCCEEDED, job.error
    assert any("rewards/accuracies" in point for point in job.metrics)


def test_rlvr_from_the_wizard_succeeds_on_the_worker(
    alice, alice_project, tiny_in_data_dir, celery_trainer, mlflow_service
):
    job = wait_for_job(
        _launch(
            alice_project, alice, "rlvr", "rlvr.jsonl", {"graders": ["exact_match"], "num_generations": 4}, 6
        ),
        timeout=240,
    )
    assert job.status == Status.SUCCEEDED, job.error
    assert any("reward" in point for point in job.metrics)
    assert job.result["heldout_after"] is not None


def test_rlaif_from_the_wizard_succeeds_on_the_worker(
    alice, alice_project, tiny_in_data_dir, celery_trainer, mlflow_service, builtin_judge_url
):
    params = {
        "judge_url": builtin_judge_url,
        "judge_model": "judge",
        "rubric": "The letters are reversed.",
        "num_generations": 4,
    }
    job = wait_for_job(_launch(alice_project, alice, "rlaif", "rlvr.jsonl", params, 6), timeout=240)
    assert job.status == Status.SUCCEEDED, job.error
    assert any(point.get("reward", 0) > 0 for point in job.metrics)
