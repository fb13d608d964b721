from __future__ import annotations

from django.conf import settings
from django.db import models


class ServicePing(models.Model):
    """A round trip web → Redis → Celery worker → database, started from the health page."""

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"ping #{self.pk}"

    @property
    def is_done(self) -> bool:
        return self.completed_at is not None

    @property
    def round_trip_ms(self) -> float | None:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.created_at).total_seconds() * 1000
