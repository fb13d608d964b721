"""Reads on endpoints and API keys, scoped to the user's projects (404 outside them)."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.http import Http404

from apps.endpoints.models import ApiKey, Endpoint


def endpoint_list_for_project(*, project_id: int, include_stopped: bool = True) -> QuerySet[Endpoint]:
    endpoints = Endpoint.objects.filter(project_id=project_id).select_related("engine", "job")
    return endpoints if include_stopped else endpoints.filter(active=True)


def builtin_endpoint(project_id: int, variant: str) -> Endpoint | None:
    """The project's deployed endpoint serving the built-in `variant` ("judge", "teacher", ...) as it is
    (no adapter on it), the newest if there are several; None when there is none. Folders are compared
    resolved, as endpoint_deploy stores them, so a data folder reached through a symlink still matches."""
    from apps.jobs.wizard import tiny_path

    folder = str(tiny_path(variant).resolve())
    return (
        Endpoint.objects.filter(project_id=project_id, active=True, base=folder, adapter="")
        .select_related("engine")
        .first()
    )


def endpoint_get_for_user(*, user: User | AnonymousUser, project_id: int, endpoint_id: int) -> Endpoint:
    if not user.is_authenticated:
        raise Http404("No such endpoint.")
    try:
        return Endpoint.objects.select_related("engine", "job", "project").get(
            pk=endpoint_id, project_id=project_id, project__memberships__user=user
        )
    except Endpoint.DoesNotExist as exc:
        raise Http404("No such endpoint.") from exc


def api_key_list_for_project(*, project_id: int) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(project_id=project_id).select_related("created_by")


def api_key_get_for_user(*, user: User | AnonymousUser, project_id: int, key_id: int) -> ApiKey:
    if not user.is_authenticated:
        raise Http404("No such key.")
    try:
        return ApiKey.objects.select_related("project").get(
            pk=key_id, project_id=project_id, project__memberships__user=user
        )
    except ApiKey.DoesNotExist as exc:
        raise Http404("No such key.") from exc
