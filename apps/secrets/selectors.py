from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from apps.projects.models import Project
from apps.secrets.models import ProjectSecret


def secret_list_for_project(*, project: Project) -> QuerySet[ProjectSecret]:
    # Everything but the value: the page never has it to show.
    return ProjectSecret.objects.filter(project=project).defer("ciphertext").select_related("created_by")


def secret_get_in_project(*, project: Project, secret_id: int) -> ProjectSecret:
    """The project's secret; a 404 for another project's (the URL's project is already the user's)."""
    return get_object_or_404(ProjectSecret, pk=secret_id, project=project)
