from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse

from apps.core.http import ProjectRequest
from apps.projects.selectors import membership_get_for_user

SESSION_KEY = "project_id"
VIEWER_REFUSED = (
    "Viewers can look but not change or generate anything in this project. "
    "Ask one of its owners to make you a member."
)


def project_view(*, edit: bool = False, manage: bool = False) -> Callable:
    """Resolve the URL's `project_id` to the user's membership (404 outside their projects), put it on
    the request as `request.membership` and `request.project`, and remember it as the current project."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapped(request: ProjectRequest, project_id: int, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = membership_get_for_user(user=request.user, project_id=project_id)
            if manage and not membership.can_manage:
                raise PermissionDenied("Only the project's owners can do this.")
            if edit and not membership.can_edit:
                raise PermissionDenied(VIEWER_REFUSED)
            request.membership = membership
            request.project = membership.project
            request.session[SESSION_KEY] = membership.project_id
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
