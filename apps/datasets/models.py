"""Datasets uploaded to a project: the file on disk, and what validation found in it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from apps.projects.models import Project


class Dataset(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="datasets"
    )
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0)
    columns = models.JSONField(default=list)
    # Per technique: {"ok": bool, "good": n, "errors": [[line, message], ...first 100], "error_count": n, "message": str}
    checks = models.JSONField(default=dict)
    # How its rows become the techniques' columns (workers.training.formats.Mapping: {"columns": {needed:
    # file column}, "format": "auto" | "as-is" | a known format}), chosen in the wizard or on its page.
    mapping = models.JSONField(default=dict, blank=True)
    # What the survey found under that mapping (workers.training.data.Survey.as_dict: format, bad lines,
    # duplicates, answers, notices), computed when it is uploaded or its mapping changes.
    survey = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def file(self) -> Path:
        return Path(self.path)

    @property
    def spec_mapping(self) -> dict[str, object]:
        """The mapping as a job or an evaluation spec takes it: {"column_map": renames, "data_format"}."""
        from workers.training.formats import Mapping, renames

        mapping = Mapping.of(self.mapping)
        return {"column_map": renames(mapping.columns), "data_format": mapping.format}

    def fits(self, technique: str) -> bool:
        return bool((self.checks.get(technique) or {}).get("ok"))
