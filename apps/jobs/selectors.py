"""Reads on jobs, scoped to the user's projects (404 outside them)."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q, QuerySet
from django.http import Http404

from apps.jobs.models import ACTIVE, WAITING, Job, Status


def job_get_for_user(*, user: User | AnonymousUser, job_id: int, project_id: int | None = None) -> Job:
    if not user.is_authenticated:
        raise Http404("No such job.")
    jobs = Job.objects.select_related("project", "created_by").filter(project__memberships__user=user)
    if project_id is not None:
        jobs = jobs.filter(project_id=project_id)
    try:
        return jobs.get(pk=job_id)
    except Job.DoesNotExist as exc:
        raise Http404("No such job.") from exc


def job_list_for_project(
    *, project_id: int, status: str | None = None, technique: str | None = None, order: str = "-created_at"
) -> QuerySet[Job]:
    jobs = Job.objects.filter(project_id=project_id).select_related("created_by")
    if status == "active":
        jobs = jobs.filter(status__in=ACTIVE)
    elif status in Status.values:
        jobs = jobs.filter(status=status)
    if technique:
        jobs = jobs.filter(technique=technique)
    return jobs.order_by(order, "-id")


def queue_position(job: Job) -> int | None:
    """1 for the next job its queue will run; None when the job is not waiting. Counts every project's
    jobs in that queue, since they share the workers."""
    if job.status not in WAITING:
        return None
    ahead = Job.objects.filter(queue=job.queue, status__in=WAITING).filter(
        Q(position__lt=job.position) | Q(position=job.position, pk__lt=job.pk)
    )
    return ahead.count() + 1
