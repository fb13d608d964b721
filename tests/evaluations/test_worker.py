"""Evaluations on the real training worker: a training job that succeeds is evaluated automatically
(claimed, leased and supervised like training), its metrics land on the training run in MLflow, and
an evaluation whose candidate cannot load fails in words with the baseline's results kept."""

from __future__ import annotations

import pytest

from apps.evaluations import selectors
from apps.jobs.models import Job, Kind, Status
from apps.jobs.services import job_create
from tests.harness import mlflow_get
from tests.jobs.test_worker import _spec, _wait

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_training_job_that_succeeds_is_evaluated_on_the_worker_and_in_mlflow(
    alice, alice_project, tiny_model, celery_trainer, mlflow_service
):
    job = job_create(
        project=alice_project, user=alice, name="reverse", spec=_spec(tiny_model / "partial", 20)
    )
    job = _wait(job, lambda j: j.ended)
    assert job.status == Status.SUCCEEDED, job.error
    evaluation = Job.objects.get(kind=Kind.EVALUATION, evaluates=job)
    evaluation = _wait(evaluation, lambda j: j.ended, timeout=180)
    assert evaluation.status == Status.SUCCEEDED, (evaluation.error, evaluation.log_tail[-2000:])
    assert evaluation.worker.startswith("trainer@") and evaluation.step == evaluation.max_steps == 100
    report = selectors.report_for(evaluation)
    assert report and [m["label"] for m in report["models"]] == ["base", "customized"]
    em = selectors.metric(report, "exact_match")
    assert em is not None
    # The training process's own held-out check and the report agree on the customized model.
    assert em["values"]["customized"]["mean"] == job.result["heldout_after"]
    assert em["values"]["base"]["mean"] == job.result["heldout_before"]
    assert evaluation.result["metrics"]["exact_match"]["customized"] == em["values"]["customized"]["mean"]
    run = mlflow_get(mlflow_service, "runs/get", run_id=job.mlflow_run_id)["run"]
    logged = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert logged["eval_exact_match"] == pytest.approx(em["values"]["customized"]["mean"])
    assert logged["eval_base_exact_match"] == pytest.approx(em["values"]["base"]["mean"])
    files = mlflow_get(mlflow_service, "artifacts/list", run_id=job.mlflow_run_id, path="evaluation")["files"]
    assert {"evaluation/report.json", "evaluation/samples.jsonl", "evaluation/samples_table.json"} <= {
        f["path"] for f in files
    }


def test_an_evaluation_whose_model_cannot_load_fails_in_words_and_keeps_the_baselines_answers(
    alice, alice_project, tiny_model, celery_trainer
):
    from apps.evaluations.services import evaluation_create
    from workers.training import tiny

    spec = {"kind": "evaluation", "models": [{"label": "base", "model": str(tiny_model / "base")},
                                             {"label": "gone", "model": "/nowhere/adapter"}],
            "dataset": str(tiny.DEMO / "reverse" / "eval.jsonl"), "max_rows": 5, "max_new_tokens": 8}  # fmt: skip
    evaluation = _wait(evaluation_create(project=alice_project, user=alice, spec=spec), lambda j: j.ended)
    assert evaluation.status == Status.FAILED and "/nowhere/adapter" in evaluation.error
    report = selectors.report_for(evaluation)
    assert report is not None and not report["complete"]
    assert (selectors.metric(report, "output_tokens") or {})["values"]["base"]["n"] == 5
