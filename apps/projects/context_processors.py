from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apps.projects.decorators import remembered_project
from apps.projects.selectors import project_list_for_user


def projects(request: HttpRequest) -> dict[str, Any]:
    """The project switcher in the header: the user's projects and the current one (the project of the
    page, else the last one visited, so pages outside a project keep the navigation)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    mine = project_list_for_user(user=user)
    current = getattr(request, "project", None)
    if current is None and (remembered := remembered_project(request)):
        current = next((p for p in mine if p.pk == remembered), None)
    return {"my_projects": mine, "current_project": current}
