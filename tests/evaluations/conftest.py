"""Evaluation rows for the page tests: a succeeded training job whose model is the session's fully
fine-tuned tiny model, and its evaluation holding the report that the `evaluated` fixture computed (the
real output of the training layer, not a made-up one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.utils import timezone

from apps.jobs.models import Job, Kind, Status
from apps.jobs.services import job_create
from workers.training import tiny


def trained_job(
    project, user, model: Path, base: str = "base-model", technique: str = "sft", metrics: list | None = None
) -> Job:
    spec = {"technique": technique, "model": base,
            "dataset": str(tiny.DEMO / "reverse" / "sft.jsonl"), "eval_dataset": str(tiny.DEMO / "reverse" / "eval.jsonl")}  # fmt: skip
    job = job_create(
        project=project, user=user, name=f"{technique.upper()} of tiny", spec=spec, auto_evaluate=False
    )
    Job.objects.filter(pk=job.pk).update(
        status=Status.SUCCEEDED,
        artifacts={"model": str(model)},
        metrics=metrics or [],
        finished_at=timezone.now(),
        step=600,
        max_steps=600,
    )
    job.refresh_from_db()
    return job


def evaluation_with_report(project, user, training: Job, report_folder: Path) -> Job:
    evaluation = job_create(project=project, user=user, name=f"Evaluation of {training.name}",
                            spec={"kind": "evaluation", "models": []}, kind=Kind.EVALUATION, evaluates=training,
                            labels={"model": "base vs customized", "dataset": "eval.jsonl"})  # fmt: skip
    Job.objects.filter(pk=evaluation.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    evaluation.refresh_from_db()
    shutil.copytree(report_folder, evaluation.output_dir, dirs_exist_ok=True)
    return evaluation


@pytest.fixture
def reported(alice, alice_project, evaluated, full_sft) -> Job:
    training = trained_job(alice_project, alice, full_sft[0])
    return evaluation_with_report(alice_project, alice, training, evaluated)
