"""Writes on jobs. Every change of status is a conditional UPDATE from the statuses that allow it, so two
processes (a person cancelling, a worker finishing, the reaper) can never both win."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from apps.jobs.models import MOVES, WAITING, Job, Kind, Status
from apps.projects.models import Project
from apps.projects.services import membership_require_editor

# workers.training.estimate's names for compute classes.
COMPUTE_CLASSES = {"CPU": "cpu", "24 GB GPU": "gpu-24g", "80 GB GPU": "gpu-80g", "multi-GPU": "multi-gpu"}


def _require_editor(*, project: Project, actor: User) -> None:
    membership_require_editor(
        project=project, actor=actor, message="Viewers can look but not start, stop or reorder jobs."
    )


def enqueue(queue: str) -> None:
    """Tell the workers of `queue` that a job may be waiting, once the transaction that queued it has
    committed (a worker must never look before the row is there)."""
    from workers.tasks import job_run_next

    transaction.on_commit(lambda: job_run_next.apply_async(args=[queue], queue=queue))


def transition(job: Job, target: str, *, where: dict[str, Any] | None = None, **fields: Any) -> bool:
    """Move `job` to `target` if it is still in a status that allows it (and matches `where`); False when
    another process moved it first. Updates `job` in memory on success."""
    sources = [source for source, targets in MOVES.items() if target in targets]
    updated = Job.objects.filter(pk=job.pk, status__in=sources, **(where or {})).update(
        status=target, **fields
    )
    if updated:
        job.status = target
        for name, value in fields.items():
            setattr(job, name, value)
    return bool(updated)


@transaction.atomic
def job_create(
    *,
    project: Project,
    user: User,
    name: str,
    spec: dict[str, Any],
    compute_class: str = "cpu",
    estimate: dict[str, Any] | None = None,
    parent: Job | None = None,
    labels: dict[str, str] | None = None,
    kind: str = Kind.TRAINING,
    evaluates: Job | None = None,
    auto_evaluate: bool = True,
    first: bool = False,
) -> Job:
    """Queue a job: last in its queue, or `first` (an automatic evaluation, so that before → after shows
    right after training)."""
    _require_editor(project=project, actor=user)
    technique = "evaluation" if kind == Kind.EVALUATION else spec.get("technique")
    if not technique:
        raise ValidationError({"spec": "The job has no technique."})
    compute_class = COMPUTE_CLASSES.get(compute_class, compute_class)
    if compute_class not in settings.JOB_QUEUES:
        raise ValidationError({"compute_class": f"Unknown compute class “{compute_class}”."})
    queue = settings.JOB_QUEUES[compute_class]
    ends = Job.objects.filter(queue=queue).aggregate(last=Max("position"), first=Min("position"))
    position = (ends["first"] or 0) - 1 if first else (ends["last"] or 0) + 1
    job = Job.objects.create(
        project=project,
        created_by=user,
        name=(name or "").strip()[:200] or f"{technique.upper()} job",
        technique=technique,
        spec=spec,
        compute_class=compute_class,
        queue=queue,
        position=position,
        estimate=estimate or {},
        parent=parent,
        kind=kind,
        evaluates=evaluates,
        auto_evaluate=auto_evaluate,
        labels=labels
        or {"model": str(spec.get("model", "")), "dataset": Path(str(spec.get("dataset", ""))).name},
    )
    enqueue(queue)
    return job


def job_cancel(*, job: Job, actor: User) -> Job:
    """A waiting job is cancelled at once; a running one is asked to stop (its worker sees `cancelling`,
    writes the flag file, and escalates to SIGTERM and SIGKILL if the trainer does not stop in time)."""
    _require_editor(project=job.project, actor=actor)
    if job.status in WAITING and transition(job, Status.CANCELLED, finished_at=timezone.now()):
        return job
    if job.status == Status.RUNNING and transition(job, Status.CANCELLING):
        return job
    job.refresh_from_db()
    if job.status in (Status.CANCELLING, Status.CANCELLED):
        return job
    raise ValidationError(
        f"This job has already {job.get_status_display().lower()}; there is nothing to cancel."
    )


def job_retry(*, job: Job, actor: User) -> Job:
    """A new job with the same spec (the old one stays as it ended)."""
    if not job.ended:
        raise ValidationError("Only a job that has ended can be retried.")
    return job_create(
        project=job.project, user=actor, name=f"{job.name} (retry)", spec=copy.deepcopy(job.spec),
        compute_class=job.compute_class, estimate=job.estimate, parent=job, labels=job.labels,
        kind=job.kind, evaluates=job.evaluates, auto_evaluate=job.auto_evaluate,
    )  # fmt: skip


def job_continue(*, job: Job, actor: User) -> Job:
    """Continue training from this job's result: a new job whose model is this job's adapter or model."""
    artifact = job.model_artifact
    if job.status != Status.SUCCEEDED or not artifact or not job.is_training:
        raise ValidationError("Only a job that succeeded has a model to continue from.")
    spec = copy.deepcopy(job.spec)
    spec["model"] = artifact
    return job_create(
        project=job.project, user=actor, name=f"{job.name} (continued)", spec=spec,
        compute_class=job.compute_class, estimate=job.estimate, parent=job,
        labels={**job.labels, "model": f"the result of job #{job.pk}"},
    )  # fmt: skip


@transaction.atomic
def job_move(*, job: Job, actor: User, direction: str) -> Job:
    """Swap a waiting job with the user's own waiting job just before ("up") or after ("down") it in the
    same queue; other people's jobs keep their places."""
    _require_editor(project=job.project, actor=actor)
    if job.created_by_id != actor.pk:
        raise PermissionDenied("You can reorder only the jobs you started.")
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.status not in WAITING:
        raise ValidationError("Only a waiting job can be moved.")
    mine = Job.objects.select_for_update().filter(queue=job.queue, status__in=WAITING, created_by=actor)
    if direction == "up":
        other = mine.filter(position__lt=job.position).order_by("-position").first()
    elif direction == "down":
        other = mine.filter(position__gt=job.position).order_by("position").first()
    else:
        raise ValidationError("Move a job up or down.")
    if other is None:
        return job
    job.position, other.position = other.position, job.position
    Job.objects.filter(pk=job.pk).update(position=job.position)
    Job.objects.filter(pk=other.pk).update(position=other.position)
    return job
