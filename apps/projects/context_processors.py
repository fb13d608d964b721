from __future__ import annotations

import secrets
from typing import Any

from django.http import HttpRequest

from apps.core import fragments
from apps.projects.decorators import remembered_project
from apps.projects.selectors import project_names_for_user


def projects(request: HttpRequest) -> dict[str, Any]:
    """The project switcher in the header: the user's projects and the current one (the project of the
    page, else the last one visited, so pages outside a project keep the navigation)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    mine = list(project_names_for_user(user=user))
    current = getattr(request, "project", None)
    if current is None and (remembered := remembered_project(request)):
        current = next((p for p in mine if p.pk == remembered), None)
    # The header's rendering is kept under what it shows (base.html, apps/core/fragments), the CSRF
    # secret included: its log-out form's token is masked from it. A browser without one yet gets a
    # fragment of its own.
    secret = request.META.get("CSRF_COOKIE") or secrets.token_hex(16)
    header_key = fragments.key(
        user.pk, user.get_username(), user.is_staff, [(p.pk, p.name) for p in mine],
        (current.pk, current.name) if current else None, secret,
    )  # fmt: skip
    return {"my_projects": mine, "current_project": current, "header_key": header_key}
