"""Generated rows waiting for a person's verdict. A generation is a chain of jobs of kind `synthesis`:
the first proposes a topic tree (stage "topics"), the next generates rows from the tree as edited; its
rows are imported here when it succeeds, curated (accepted, rejected, edited), and the accepted ones
saved as a Dataset with their provenance."""

from __future__ import annotations

from django.db import models

from apps.jobs.models import Job


class Verdict(models.TextChoices):
    PENDING = "pending", "Not reviewed"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class GeneratedRow(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="generated_rows")
    index = models.PositiveIntegerField()  # its line in the job's rows.jsonl
    topic = models.CharField(max_length=300, blank=True)
    data = models.JSONField()  # the row in the technique's columns, as edited
    original = models.JSONField()  # as the teacher wrote it
    provenance = models.JSONField(default=dict)  # teacher, request, topic, document chunk
    verdict = models.CharField(max_length=10, choices=Verdict.choices, default=Verdict.PENDING)
    edited = models.BooleanField(default=False)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint("job", "index", name="generated_row_unique_per_job")]

    def __str__(self) -> str:
        return f"row {self.index} of job {self.job_id} ({self.verdict})"
