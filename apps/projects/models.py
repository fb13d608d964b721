"""Projects are the tenants: every model, dataset, job and endpoint belongs to one."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

PROJECT_NAME_MAX_LENGTH = 100


class Project(models.Model):
    name = models.CharField(max_length=PROJECT_NAME_MAX_LENGTH)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="created_projects"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # Unique per creator, not globally: a global constraint would tell a user that somebody
            # else's project of that name exists.
            models.UniqueConstraint("created_by", Lower("name"), name="project_name_unique_per_creator"),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


EDITORS = (Role.OWNER, Role.MEMBER)  # the roles that change and generate; viewers only look


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project__name", "user__username"]
        constraints = [
            models.UniqueConstraint("project", "user", name="membership_unique_per_project"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"

    @property
    def can_edit(self) -> bool:
        """Members and owners create and change things; viewers only look."""
        return self.role in EDITORS

    @property
    def can_manage(self) -> bool:
        """Only owners change who is in the project."""
        return self.role == Role.OWNER
