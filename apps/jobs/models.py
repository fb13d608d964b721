"""Training jobs. The row is the source of truth: the broker only says "a job may be waiting in this
queue"; which job runs, and whether it may run at all, is decided here with conditional UPDATEs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models

from apps.projects.models import Project
from workers.training.folder import JobFolder


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    INTERRUPTED = "interrupted", "Interrupted (waiting to resume)"


# The allowed moves. Interrupted: its worker died or was stopped; the reaper queues it again and the next
# worker resumes it from its newest complete checkpoint.
MOVES: dict[str, frozenset[str]] = {
    Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED}),
    Status.RUNNING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLING, Status.INTERRUPTED}),
    Status.CANCELLING: frozenset({Status.CANCELLED, Status.FAILED, Status.SUCCEEDED}),
    Status.INTERRUPTED: frozenset({Status.RUNNING, Status.CANCELLED, Status.FAILED}),
    Status.CANCELLED: frozenset(),
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
}
WAITING = (Status.QUEUED, Status.INTERRUPTED)
ACTIVE = (Status.QUEUED, Status.RUNNING, Status.CANCELLING, Status.INTERRUPTED)
ENDED = (Status.CANCELLED, Status.SUCCEEDED, Status.FAILED)


class Outcome(models.TextChoices):
    """A succeeded training job's held-out verdict (the finished event's): its status stays SUCCEEDED, so
    every check of "has a model" keeps working, and the pages show WORSE as a state of its own."""

    UNKNOWN = "", "Not measured"
    BETTER = "better", "Better than its base"
    SAME = "same", "No clear change from its base"
    WORSE = "worse", "Worse than its base"


class Kind(models.TextChoices):
    TRAINING = "training", "Training"
    EVALUATION = "evaluation", "Evaluation"
    SYNTHESIS = "synthesis", "Data generation"


def _folder_name() -> str:
    return uuid.uuid4().hex


class Job(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    name = models.CharField(max_length=200)
    technique = models.CharField(max_length=20)
    # An evaluation runs on the same queues under the same rules (claim, lease, cancel, resume); its spec
    # is an evaluation spec and its result a report.
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.TRAINING)
    evaluates = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluations"
    )
    # Evaluate the model automatically when training succeeds (base against customized).
    auto_evaluate = models.BooleanField(default=True)
    # The training spec without the parts the runner fills in (output folder, job id, tracking server).
    spec = models.JSONField()
    # What people read for the model and data (the spec holds paths): {"model": ..., "dataset": ...}.
    labels = models.JSONField(default=dict, blank=True)
    # Retry and "continue training" start a new job from an old one.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    compute_class = models.CharField(max_length=20, default="cpu")
    queue = models.CharField(max_length=40, default="train-cpu")
    # Lower runs first; people reorder their own waiting jobs by swapping positions.
    position = models.BigIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A running job's worker renews the lease; the reaper re-queues a job whose lease ran out.
    lease_until = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    step = models.PositiveIntegerField(default=0)
    max_steps = models.PositiveIntegerField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=list, blank=True)  # [{"step": 10, "loss": 1.2, ...}, ...]
    log_tail = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)  # the finished event's final metrics
    artifacts = models.JSONField(default=dict, blank=True)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    # Set when a training job succeeds, from its finished event's verdict on the held-out rows.
    outcome = models.CharField(max_length=8, choices=Outcome.choices, blank=True, default=Outcome.UNKNOWN)
    outcome_reason = models.TextField(blank=True)
    # The trainer's `guardrail` events as they happen: [{"step", "code", "level", "message"}, ...].
    guardrails = models.JSONField(default=list, blank=True)
    estimate = models.JSONField(default=dict, blank=True)
    # The job's folder under DATA_DIR/jobs: unique even when ids repeat (a new database beside an old
    # data folder), so a job never resumes another's checkpoints or MLflow run.
    folder = models.CharField(max_length=40, default=_folder_name, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["queue", "status", "position"]),
            # The pages' orderings and filters within a project, so a page reads its 20 rows and not the
            # project's every job (bench/web.py): the jobs list newest first, by status, by technique and
            # by name; the dashboard's recently ended.
            models.Index(fields=["project", "-created_at", "-id"], name="job_project_newest"),
            models.Index(fields=["project", "status", "-created_at", "-id"], name="job_project_status"),
            models.Index(fields=["project", "technique", "-created_at", "-id"], name="job_project_technique"),
            models.Index(fields=["project", "name", "-id"], name="job_project_name"),
            models.Index(fields=["project", "-finished_at"], name="job_project_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def waiting(self) -> bool:
        return self.status in WAITING

    @property
    def worse(self) -> bool:
        """Succeeded, but its held-out score fell below its base's beyond the interval."""
        return self.status == Status.SUCCEEDED and self.outcome == Outcome.WORSE

    @property
    def state(self) -> str:
        """The state people read: the status, or "succeeded, but worse than its base"."""
        return "worse" if self.worse else self.status

    @property
    def state_label(self) -> str:
        return "Succeeded, but worse than its base" if self.worse else self.get_status_display()

    @property
    def heldout_curve(self) -> list[dict[str, Any]]:
        """The held-out sample's scores during training (the chart's `heldout` points)."""
        return [p for p in self.metrics or [] if isinstance(p.get("heldout"), int | float)]

    @property
    def heldout(self) -> dict[str, Any] | None:
        """The one held-out before → after the job's pages show: the finished event's (the function and
        rows the evaluation report uses); a job trained before that shows its trainer's exact match."""
        r: dict[str, Any] = self.result or {}
        if r.get("heldout_before") is not None:
            return {
                "before": r["heldout_before"], "after": r.get("heldout_after"),
                "interval_before": r.get("heldout_interval_before"), "interval_after": r.get("heldout_interval_after"),
                "grader": r.get("heldout_grader") or "score", "rows": r.get("heldout_rows"),
                "best_step": r.get("best_step"), "stopped_early": r.get("stopped_early"),
                "reason": r.get("verdict_reason") or "", "legacy": False,
            }  # fmt: skip
        if r.get("eval_exact_match_before") is not None:  # "legacy": another function than the report's
            return {"legacy": True, "before": r["eval_exact_match_before"], "after": r.get("eval_exact_match_after"),
                    "grader": "Exact match", "rows": None, "best_step": None, "stopped_early": None, "reason": ""}  # fmt: skip
        return None

    @property
    def progress(self) -> float:
        """0 to 1; 1 once succeeded."""
        if self.status == Status.SUCCEEDED:
            return 1.0
        return min(1.0, self.step / self.max_steps) if self.max_steps else 0.0

    @property
    def output_dir(self) -> Path:
        return Path(settings.DATA_DIR) / "jobs" / f"{self.pk}-{self.folder}"

    @property
    def files(self) -> JobFolder:
        """The job folder's files by what they are (the worker, its training process and the pages share
        the names: workers.training.folder)."""
        return JobFolder(self.output_dir)

    @property
    def is_evaluation(self) -> bool:
        return self.kind == Kind.EVALUATION

    @property
    def is_training(self) -> bool:
        return self.kind == Kind.TRAINING

    @property
    def is_synthesis(self) -> bool:
        return self.kind == Kind.SYNTHESIS

    @property
    def generation_root(self) -> Job:
        """The first job of a data generation (the topic tree); its page shows the whole generation."""
        job = self
        while job.parent_id and job.parent and job.parent.kind == Kind.SYNTHESIS:
            job = job.parent
        return job

    @property
    def resilience(self) -> dict[str, Any]:
        """The resilient mode's settings ({} for a plain run): replicas on several workers (torchft)."""
        return dict((self.spec or {}).get("resilience") or {})

    @property
    def model_artifact(self) -> str | None:
        """The trained adapter or model folder, which a later job can start from."""
        artifacts: dict[str, Any] = self.artifacts or {}
        return artifacts.get("adapter") or artifacts.get("model")


class Replica(models.Model):
    """One worker's place in a resilient job: it runs one replica process (and starts a new one when that
    process dies). Numbers go up within a job and name the replica in the job's events; a row whose
    worker stopped renewing its lease is ended by the reaper."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="replicas")
    number = models.PositiveIntegerField()
    worker = models.CharField(max_length=200)
    lease_until = models.DateTimeField()
    # A higher-priority job waits for a worker: this replica leaves at its next step boundary.
    leave_requested = models.BooleanField(default=False)
    restarts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint("job", "number", name="replica_unique_number_per_job")]

    def __str__(self) -> str:
        return f"replica {self.number} of job {self.job_id} on {self.worker}"


class Draft(models.Model):
    """The wizard's choices so far, one per person and project: back, reload and coming back tomorrow
    lose nothing. Launching turns it into a job and empties it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="drafts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="drafts")
    data = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint("project", "user", name="draft_unique_per_user_project")]

    def __str__(self) -> str:
        return f"draft of {self.user} in {self.project}"
