"""Request types for views, so that type checking knows what middleware and decorators put on them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

if TYPE_CHECKING:
    from apps.projects.models import Membership, Project


class AuthedRequest(HttpRequest):
    """A request behind login_required, through django-htmx's middleware."""

    user: User
    htmx: HtmxDetails


class ProjectRequest(AuthedRequest):
    """A request through @project_view: the user's membership in the URL's project."""

    membership: Membership
    project: Project
