"""Reads on jobs, scoped to the user's projects (404 outside them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils.timesince import timesince

from apps.jobs.models import ACTIVE, WAITING, Job, Outcome, Replica, Status


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


def job_model_get_for_user(*, user: User | AnonymousUser, project_id: int, job_id: int) -> Job | None:
    """The job of this project whose trained model someone chose (a chain's start, an endpoint, an
    evaluation): 404 outside the user's projects, None when the job has no model (yet)."""
    job = job_get_for_user(user=user, job_id=job_id, project_id=project_id)
    if job.status != Status.SUCCEEDED or not job.is_training or not job.model_artifact:
        return None
    return job


# What a row of the jobs list or the dashboard shows. The big columns (the spec, the metric history, the
# log tail, the result, the guardrail events: about 9 KB a job) stay in the database until the job's own
# page asks for them; decoding them for 20 rows was a tenth of the list's time (bench/web.py).
ROW_FIELDS = (
    "project_id", "name", "technique", "kind", "status", "outcome", "outcome_reason", "step", "max_steps",
    "position", "created_at", "started_at", "finished_at", "created_by__username",
)  # fmt: skip


def row_shown(job: Job, now: datetime) -> tuple[Any, ...]:
    """What a row of the jobs list or the dashboard shows of a job: its fragment's key (apps/core/fragments)."""
    return (
        job.pk, job.name, job.technique, job.status, job.outcome, job.outcome_reason, job.step, job.max_steps,
        job.created_by.username if job.created_by_id else None,
        timesince(job.created_at, now), timesince(job.finished_at, now) if job.finished_at else None,
    )  # fmt: skip


def job_rows(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """`jobs` as list rows: the row's columns and who started it, nothing more."""
    return jobs.select_related("created_by").only(*ROW_FIELDS)


def job_list_for_project(
    *, project_id: int, status: str | None = None, technique: str | None = None, order: str = "-created_at"
) -> QuerySet[Job]:
    jobs = Job.objects.filter(project_id=project_id).select_related("created_by")
    if status == "active":
        jobs = jobs.filter(status__in=ACTIVE)
    elif status == "worse":  # succeeded, but worse than its base
        jobs = jobs.filter(status=Status.SUCCEEDED, outcome=Outcome.WORSE)
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


def replica_states(job: Job) -> dict[str, Any]:
    """What the job page shows of a resilient job, from its events: each replica's state, the timeline of
    failures and recoveries, the live replica count and goodput."""
    from workers.training.events import read_events
    from workers.training.resilient import goodput

    events = read_events(job.files.events)
    states: dict[int, dict[str, Any]] = {}
    labels = {
        "replica_spawned": "starting", "replica_started": "loading", "replica_standby": "standby",
        "replica_ready": "joining", "replica_recovered": "training", "replica_healed": "training",
        "replica_leaving": "leaving", "replica_left": "left", "replica_died": "died",
        "replica_done": "done", "finished": "done",
    }  # fmt: skip
    timeline = []
    start = events[0]["time"] if events else 0.0
    for e in events:
        kind, number = e.get("event"), e.get("replica")
        if number is not None and kind in labels:
            state = states.setdefault(int(number), {"number": int(number), "restarts": 0, "heals": 0})
            state["state"] = labels[str(kind)]
            state["host"] = e.get("host") or state.get("host", "")
            if kind == "replica_spawned" and e.get("replacement"):
                state["restarts"] += 1
            if kind == "replica_healed":
                state["heals"] += 1
            if kind == "replica_recovered" and e.get("recovery_seconds") is not None:
                state["recovery_seconds"] = e["recovery_seconds"]
        if kind in TIMELINE:
            timeline.append({"at": round(e["time"] - start, 1), "kind": kind, "text": TIMELINE[str(kind)](e)})
    steps = [e for e in events if e.get("event") == "step"]
    rows = {r.number: r for r in Replica.objects.filter(job=job, number__in=list(states))}
    for number, state in states.items():
        if (row := rows.get(number)) is not None:
            state["worker"] = row.worker
            if row.ended_at and state.get("state") not in ("done", "left", "died"):
                state["state"] = "gone"
    return {
        "replicas": sorted(states.values(), key=lambda s: int(s["number"])),
        "timeline": timeline[-40:],
        "timeline_total": len(timeline),
        "live": steps[-1]["participants"] if steps else 0,
        "goodput": goodput(events, int(job.resilience.get("max_replicas", 1))),
        "minimum": job.resilience.get("min_replicas"),
        "maximum": job.resilience.get("max_replicas"),
    }


TIMELINE: dict[str, Any] = {
    "lighthouse": lambda e: "Coordinator up: the lighthouse waits for replicas.",
    "replica_spawned": lambda e: (
        f"Replica {e['replica']} {'replaced' if e.get('replacement') else 'started'}"
        + (f" on {e['worker']}" if e.get("worker") else "")
        + f" (step {e.get('step', 0)})."
    ),
    "replica_died": lambda e: f"Replica {e['replica']} died ({e.get('reason')}) at step {e.get('step')}.",
    "fault_injected": lambda e: f"Fault injected: {e.get('signal')} to replica {e['replica']}.",
    "replica_healed": lambda e: (
        f"Replica {e['replica']} healed from a peer: step {e['from_step']} → {e['step']} "
        f"in {e.get('seconds')} s."
    ),
    "replica_leaving": lambda e: f"Replica {e['replica']} asked to leave (step {e.get('step')}).",
    "replica_left": lambda e: f"Replica {e['replica']} left at step {e['step']}.",
    "resumed": lambda e: f"Replica {e['replica']} started from the disk checkpoint of step {e['step']}.",
    "step_failed": lambda e: f"Step {e['step']} not committed on replica {e['replica']} (a peer was lost).",
    "finished": lambda e: "Training finished.",
}
