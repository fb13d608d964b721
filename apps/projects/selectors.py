"""Reads scoped to the user's projects. Anything outside them is a 404, never a 403: a 403 would confirm
that the object exists."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, QuerySet
from django.http import Http404

from apps.projects.models import Membership, Project


def project_list_for_user(*, user: User | AnonymousUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).annotate(
        member_count=Count("memberships", distinct=True)
    )


def project_names_for_user(*, user: User | AnonymousUser) -> QuerySet[Project]:
    """The user's projects with their names alone: the header's project switcher."""
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).only("id", "name")


def membership_get_for_user(*, user: User | AnonymousUser, project_id: int) -> Membership:
    """The user's membership in the project, with the project; Http404 when there is none."""
    if not user.is_authenticated:
        raise Http404("No such project.")
    try:
        return Membership.objects.select_related("project").get(project_id=project_id, user=user)
    except Membership.DoesNotExist as exc:
        raise Http404("No such project.") from exc


def project_get_for_user(*, user: User | AnonymousUser, project_id: int) -> Project:
    return membership_get_for_user(user=user, project_id=project_id).project


def membership_list_for_project(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")
