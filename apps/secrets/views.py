"""The project's settings page: its Secrets section (add, list without values, delete)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.http import ProjectRequest
from apps.projects.decorators import project_view
from apps.secrets import selectors, services
from apps.secrets.forms import SecretForm


@sensitive_post_parameters("value")  # an error report never holds the key
@require_http_methods(["GET", "POST"])
@project_view()
def project_settings(request: ProjectRequest) -> HttpResponse:
    form = SecretForm(request.POST or None)
    if request.method == "POST":
        if not request.membership.can_edit:  # refused with the reason, as every viewer's POST is
            raise PermissionDenied("Viewers can look but not change the project's secrets.")
        if form.is_valid():
            try:
                secret = services.secret_save(project=request.project, user=request.user, **form.cleaned_data)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Secret “{secret.name}” saved. Its key is not shown again.")
                return redirect("project-settings", request.project.pk)
    context = {
        "form": form, "secrets": selectors.secret_list_for_project(project=request.project),
        "worker_env": services.worker_env_names(), "section": "settings",
    }  # fmt: skip
    return render(request, "secrets/settings.html", context, status=422 if form.errors else 200)


@require_POST
@project_view(edit=True)
def secret_delete(request: ProjectRequest, secret_id: int) -> HttpResponse:
    secret = selectors.secret_get_in_project(project=request.project, secret_id=secret_id)
    services.secret_delete(secret=secret, user=request.user)
    messages.success(
        request, f"Secret “{secret.name}” deleted: jobs that use it will fail until it is saved again."
    )
    return redirect("project-settings", request.project.pk)
