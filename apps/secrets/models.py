"""A project's secrets: API keys for judges and teachers, typed once, stored encrypted with the app's
key (apps.secrets.crypto), never shown again, and usable only by that project's jobs."""

from __future__ import annotations

from django.conf import settings
from django.db import models

SECRET_NAME_MAX_LENGTH = 64


class ProjectSecret(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=SECRET_NAME_MAX_LENGTH)
    # Fernet token (AES-128-CBC + HMAC-SHA256) of the value; the key is derived from SECRET_KEY.
    ciphertext = models.BinaryField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint("project", "name", name="secret_name_unique_per_project")]

    def __str__(self) -> str:
        return f"{self.name} ({self.project})"  # never the value

    def __repr__(self) -> str:
        return f"<ProjectSecret {self.pk} {self.name!r}>"
