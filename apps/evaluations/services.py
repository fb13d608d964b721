"""Evaluations are jobs of their own kind: the same queues, claim, lease, cancel and resume as training,
with an evaluation spec (workers.training.evaluation.EvalSpec) and a report as their result."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError

from apps.jobs.models import Job, Kind, Status
from apps.jobs.services import job_create
from apps.projects.models import Project
from workers.training.models import trained_from

log = logging.getLogger("atelier.evaluations")

DEFAULT_MAX_ROWS = 200
DEFAULT_MAX_NEW_TOKENS = 64


def _model(spec: dict[str, Any]) -> str:
    model = spec.get("model")
    return str(model.get("name_or_path") if isinstance(model, dict) else model)


def judge_from_params(params: dict[str, Any]) -> dict[str, Any] | None:
    """An RLAIF job's judge, to judge its evaluation too (an endpoint judge gets a key of its own)."""
    if params.get("judge_endpoint"):
        judge: dict[str, Any] = {"endpoint": int(params["judge_endpoint"]), "base_url": "", "model": ""}
        if params.get("rubric"):
            judge["rubric"] = params["rubric"]
        return judge
    if not (params.get("judge_url") and params.get("judge_model")):
        return None
    judge = {"base_url": params["judge_url"], "model": params["judge_model"]}
    if params.get("rubric"):
        judge["rubric"] = params["rubric"]
    if params.get("judge_key"):
        judge["key"] = params["judge_key"]  # the secret's name; the runner puts its value in place
    return judge


def candidate(job: Job, label: str | None = None) -> dict[str, Any]:
    """A succeeded training job's model as one side of a comparison."""
    if job.is_evaluation or job.status != Status.SUCCEEDED or not job.model_artifact:
        raise ValidationError(
            f"Job #{job.pk} has no trained model to evaluate (it {job.get_status_display().lower()})."
        )
    return {
        "label": label or f"job #{job.pk}",
        "model": job.model_artifact,
        "mlflow_run_id": job.mlflow_run_id or None,
    }


def spec_for_job(
    job: Job,
    *,
    baseline: Job | None = None,
    others: list[Job] | None = None,
    dataset: str | None = None,
    graders: list[str] | None = None,
    grader_options: dict[str, dict[str, Any]] | None = None,
    judge: dict[str, Any] | None = None,
    text_metrics: bool = True,
    benchmarks: list[str] | None = None,
    max_rows: int | None = None,
    max_new_tokens: int | None = None,
    mapping: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The evaluation spec of a training job's model against its base model (or against `baseline`, an
    earlier job's model), plus any `others`, on the job's held-out split unless `dataset` names another
    (read under `mapping`, that dataset's own: Dataset.spec_mapping). Graders and judge default to what
    the job was trained with."""
    from workers.training.techniques import REGISTRY, make_params

    params = dict(job.spec.get("params") or {})
    technique = REGISTRY[job.technique]
    if graders is None:
        # The graders the trainer scored its before → after by, as the technique declares
        # (workers.training.heldout.graders_for); a judged job's prompts may have no answer, and then its
        # held-out rows were none (heldout_rows 0) and its judge alone scores.
        graders, declared = technique.graders(make_params(technique, params))
        if technique.judged and not (job.result or {}).get("heldout_rows"):
            graders = []
        grader_options = grader_options or declared
    if judge is None and technique.judged:
        judge = judge_from_params(params)
    dataset = dataset or job.spec.get("eval_dataset")
    if not dataset:
        raise ValidationError("This job kept no held-out rows: choose a dataset to evaluate on.")
    first = (
        candidate(baseline, f"job #{baseline.pk}")
        if baseline
        # What the job trained from: for a job chained from an earlier one, that job's merged model.
        else {"label": "base", "model": trained_from(_model(job.spec))}
    )
    models = [first, candidate(job, "customized" if baseline is None else f"job #{job.pk}")]
    for other in others or []:
        if other.pk not in (job.pk, getattr(baseline, "pk", None)):
            models.append(candidate(other))
    # The same rows, answer length and batches as the trainer's held-out score, so the report's base →
    # customized equals the job's before → after exactly (one function: workers.training.heldout).
    from workers.training.spec import SpecError, Training, new_evaluation_spec

    training = job.spec.get("training") or {}
    defaults = Training()
    try:
        return new_evaluation_spec(
            models=models, dataset=dataset, graders=list(graders), grader_options=grader_options,
            text_metrics=text_metrics, judge=judge, benchmarks=benchmarks,
            max_rows=max_rows or int(training.get("eval_max_rows") or defaults.eval_max_rows),
            max_new_tokens=max_new_tokens or int(training.get("eval_max_new_tokens") or defaults.eval_max_new_tokens),
            batch_size=int(training.get("eval_batch_size") or defaults.eval_batch_size),
            **(mapping if dataset and mapping is not None else {"column_map": job.spec.get("column_map"),
                                                               "data_format": job.spec.get("data_format") or "auto"}),
        )  # fmt: skip
    except SpecError as exc:
        raise ValidationError(str(exc)) from exc


def evaluation_create(
    *, project: Project, user: User, spec: dict[str, Any], evaluates: Job | None = None,
    name: str = "", compute_class: str = "cpu", first: bool = False,
) -> Job:  # fmt: skip
    labels = {
        "model": " vs ".join(str(m["label"]) for m in spec["models"]),
        "dataset": Path(str(spec["dataset"])).name,
    }
    return job_create(
        project=project, user=user, name=name or (f"Evaluation of {evaluates.name}" if evaluates else "Evaluation"),
        spec=spec, compute_class=compute_class, labels=labels, kind=Kind.EVALUATION, evaluates=evaluates, first=first,
    )  # fmt: skip


def evaluation_after_training(job: Job) -> Job | None:
    """The automatic evaluation of a training job that succeeded (base against customized, first in its
    queue); None when it is switched off or there is nothing to evaluate on."""
    if job.is_evaluation or not job.auto_evaluate or job.status != Status.SUCCEEDED:
        return None
    if not job.spec.get("eval_dataset") or not job.model_artifact:
        return None
    try:
        spec = spec_for_job(job)
        return evaluation_create(project=job.project, user=job.created_by, spec=spec, evaluates=job,
                                 compute_class=job.compute_class, first=True)  # fmt: skip
    except (ValidationError, PermissionDenied) as exc:
        log.warning("job %s: no automatic evaluation: %s", job.pk, exc)
        return None


def judge_fit_problem(*, project_id: int, spec: dict[str, Any]) -> str | None:
    """Why the evaluation's judge, one of the project's endpoints, cannot read what it will be asked, with
    the numbers, or None. Its requests: a review of each answer (the row's prompt, its reference, an answer
    of up to max_new_tokens) and, pairwise, a comparison of two such answers; it answers each with its
    reasoning (Judge.reason_tokens). A URL judge's context is unknown here, so it is not checked."""
    from apps.core import fit
    from apps.endpoints.models import Endpoint
    from workers.training import heldout
    from workers.training.evaluation import JudgeSpec

    judge = spec.get("judge") or {}
    if not judge.get("endpoint"):
        return None
    endpoint = Endpoint.objects.filter(project_id=project_id, pk=judge["endpoint"], active=True).first()
    if endpoint is None:
        return None
    try:
        rows = heldout.select_rows(spec["dataset"], spec.get("column_map"), spec["max_rows"])
    except (ValueError, OSError):  # the evaluation itself says what is wrong with the dataset
        return None
    rubric = str(judge.get("rubric") or JudgeSpec.rubric)
    answer = int(spec["max_new_tokens"])
    picked = fit.longest(
        (len(str(r["prompt"])) + len(str(r.get("answer") or "")) + len(str(r.get("rubric") or "")), r)
        for r in rows
    )
    folder, model = fit.endpoint_model(endpoint)
    found = [
        fit.fit(folder, model, (fit.review_messages(str(r.get("rubric") or rubric), r["prompt"], "", r.get("answer"))
                                for r in picked), answer=fit.JUDGE_REASON_TOKENS, extra=answer)
        if judge.get("scores", True) else None,
        fit.fit(folder, model, (fit.compare_messages(str(r.get("rubric") or rubric), r["prompt"], "", "") for r in picked),
                answer=fit.JUDGE_REASON_TOKENS, extra=2 * answer)
        if judge.get("pairwise", True) else None,
    ]  # fmt: skip
    worst = max((f for f in found if f is not None), key=lambda f: f.request + f.answer, default=None)
    if worst is None or worst.fits:
        return None
    holds = (
        f"two answers of up to {answer:,} tokens each (pairwise)"
        if worst is found[1]
        else f"its reference and an answer of up to {answer:,} tokens"
    )
    numbers = worst.numbers("The judge's")
    return (
        f"{numbers} (That request holds the longest prompt of the rows evaluated, {holds}.) Lower “Longest "
        "answer”, evaluate shorter prompts, or choose a judge that reads more."
    )
