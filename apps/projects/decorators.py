from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from apps.core.http import ProjectRequest
from apps.projects.selectors import membership_get_for_user

# The project a person last opened (the home page goes back to it; pages outside a project keep its
# navigation) lives in a cookie of its own: only an id, checked against their memberships wherever it is
# read. In the session it cost a database write (an UPDATE of the session row) on the page that set it.
PROJECT_COOKIE = "atelier_project"
PROJECT_COOKIE_AGE = 365 * 24 * 3600


def remembered_project(request: HttpRequest) -> int | None:
    """The id of the project last opened in this browser (not yet checked against anyone's projects)."""
    try:
        return int(request.COOKIES.get(PROJECT_COOKIE, ""))
    except ValueError:
        return None


VIEWER_REFUSED = (
    "Viewers can look but not change or generate anything in this project. "
    "Ask one of its owners to make you a member."
)


def project_view(*, edit: bool = False, manage: bool = False) -> Callable:
    """Resolve the URL's `project_id` to the user's membership (404 outside their projects), put it on
    the request as `request.membership` and `request.project`, and remember it as the current project (PROJECT_COOKIE)."""

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
            response = view(request, *args, **kwargs)
            if remembered_project(request) != membership.project_id:
                response.set_cookie(
                    PROJECT_COOKIE, str(membership.project_id), max_age=PROJECT_COOKIE_AGE, httponly=True,
                    samesite="Lax", secure=settings.SESSION_COOKIE_SECURE,
                )  # fmt: skip
            return response

        return wrapped

    return decorator
