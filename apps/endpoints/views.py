"""Endpoint pages: the list (deploy a base model, API keys), one endpoint (status, usage, snippets,
undeploy and redeploy, export), the playground, and Deploy on a job."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.forms import form_keep
from apps.core.http import ProjectRequest
from apps.endpoints import exports
from apps.endpoints.gateway import check, error_response, forward
from apps.endpoints.models import Endpoint, EndpointStatus
from apps.endpoints.selectors import (
    api_key_get_for_user,
    api_key_list_for_project,
    builtin_endpoint,
    endpoint_get_for_user,
    endpoint_list_for_project,
)
from apps.endpoints.services import (
    api_key_create,
    api_key_revoke,
    endpoint_deploy,
    endpoint_deploy_builtin,
    endpoint_redeploy,
    endpoint_undeploy,
)
from apps.jobs import model_sources, wizard
from apps.jobs.lineage import job_of_model
from apps.jobs.selectors import job_get_for_user
from apps.projects.decorators import VIEWER_REFUSED, project_view
from apps.projects.selectors import membership_get_for_user
from workers.serving.protocol import ApiError
from workers.training.context import model_context


class DeployForm(forms.Form):
    model = forms.CharField(
        max_length=500,
        help_text="A Hugging Face id (org/name) or a model folder this server offers; "
        "a job's model is deployed from its job page.",
    )
    name = forms.SlugField(
        max_length=80, required=False, help_text="What requests put in `model`; made from the model if empty."
    )


class KeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="To tell keys apart, e.g. the app that uses it.")


def gateway_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/v1")


@require_http_methods(["GET", "POST"])
@project_view()
def endpoint_list(request: ProjectRequest) -> HttpResponse:
    project = request.project
    form = DeployForm(request.POST or None)
    if request.method == "POST" and not request.membership.can_edit:
        raise PermissionDenied(VIEWER_REFUSED)
    if request.method == "POST" and form.is_valid():
        model = form.cleaned_data["model"].strip()
        local = model_sources.is_path(model)
        try:
            chosen = wizard.model_choose(
                project=project, user=request.user, source="local" if local else "hub", hub_id=model,
                local_path=model,
            )  # fmt: skip
            endpoint = endpoint_deploy(project=project, user=request.user, model=chosen["model"],
                                       label=chosen["label"], name=form.cleaned_data["name"])  # fmt: skip
        except ValidationError as exc:
            form.add_error("model", " ".join(exc.messages))
        else:
            messages.success(
                request, f"Deploying {endpoint.name}: it is ready when its engine has loaded the model."
            )
            return redirect("endpoint-detail", project.pk, endpoint.pk)
    endpoints = endpoint_list_for_project(project_id=project.pk)
    context = {
        "endpoints": endpoints, "form": form, "keys": api_key_list_for_project(project_id=project.pk),
        "key_form": KeyForm(), "new_key": request.session.pop("new_api_key", None), "gateway": gateway_url(request),
        "catalog": wizard.catalog(), "section": "endpoints",
        "polling": any(e.active and e.status in (EndpointStatus.PENDING, EndpointStatus.LOADING) for e in endpoints),
    }  # fmt: skip
    template = "endpoints/list.html#table" if request.htmx else "endpoints/list.html"
    return render(request, template, context)


@require_POST
@project_view(edit=True)
def endpoint_deploy_job(request: ProjectRequest, job_id: int) -> HttpResponse:
    job = job_get_for_user(user=request.user, job_id=job_id, project_id=request.project.pk)
    try:
        endpoint = endpoint_deploy(project=request.project, user=request.user, job=job,
                                   confirm_worse=request.POST.get("confirm_worse") == "1")  # fmt: skip
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("job-detail", request.project.pk, job.pk)
    return redirect("endpoint-detail", request.project.pk, endpoint.pk)


@require_POST
@project_view(edit=True)
def endpoint_deploy_model(request: ProjectRequest) -> HttpResponse:
    """Deploy from the model catalog: one click, no form. The built-in judge and teacher are deployed
    once per project: a second click gives the same endpoint back."""
    source = request.POST.get("source", "")
    helper = source.removeprefix(f"{wizard.BUILTIN}/")
    try:
        if source.startswith(f"{wizard.BUILTIN}/") and helper in wizard.HELPERS:
            endpoint = endpoint_deploy_builtin(project=request.project, user=request.user, variant=helper)
        else:
            chosen = wizard.model_choose(project=request.project, user=request.user, source=source)
            endpoint = endpoint_deploy(
                project=request.project, user=request.user, model=chosen["model"], label=chosen["label"]
            )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("model-catalog", request.project.pk)
    return redirect("endpoint-detail", request.project.pk, endpoint.pk)


def _back(request: ProjectRequest, fallback: str) -> str:
    """The `next` page when it is one of this site's (no other host, no scheme), else `fallback`."""
    back = request.POST.get("next") or request.GET.get("next") or ""
    safe = back.startswith("/") and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return back if safe else fallback


@require_POST
@project_view(edit=True)
def builtin_deploy(request: ProjectRequest, variant: str) -> HttpResponse:
    """The "Deploy the built-in judge" (or teacher) button beside a form's field posts the whole form
    here: the helper is deployed (or the one already deployed is found) and the person goes back to the
    form with everything typed kept and the new endpoint chosen in the field named by `use`."""
    if variant not in wizard.HELPERS:
        raise Http404("No such built-in model.")
    back = _back(request, reverse("model-catalog", args=[request.project.pk]))
    try:
        endpoint = endpoint_deploy_builtin(project=request.project, user=request.user, variant=variant)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        form_keep(request, path=urlsplit(back).path)
        return redirect(back)
    form_keep(request, path=urlsplit(back).path, use=request.POST.get("use", ""), value=str(endpoint.pk))
    messages.success(
        request,
        f"The {wizard.HELPER_LABELS[variant].lower()} is deployed as {endpoint.name} and chosen below; "
        "it answers once its engine has loaded the model (a few seconds).",
    )
    return redirect(back)


@require_GET
@project_view()
def model_catalog(request: ProjectRequest) -> HttpResponse:
    """Base models: the built-in tiny model and the catalog, with their size and memory, to customize
    or to deploy as they are; and the built-in judge and teacher, deployed in one click."""
    tiny = [
        {
            "source": v,
            "name": f"Built-in tiny model ({v})",
            "built": (wizard.tiny_path(v) / "config.json").exists(),
            "context": model_context(wizard.tiny_path(v)),
        }
        for v in wizard.TINY
    ]
    helpers = [
        {
            "variant": v, "source": f"{wizard.BUILTIN}/{v}", "name": wizard.HELPER_LABELS[v],
            "purpose": wizard.HELPER_PURPOSE[v], "built": (wizard.tiny_path(v) / "config.json").exists(),
            "context": model_context(wizard.tiny_path(v)),
            "endpoint": builtin_endpoint(request.project.pk, v),
        }
        for v in wizard.HELPERS
    ]  # fmt: skip
    catalog = [
        {
            **m,
            "size": f"{m['parameters'] / 1e9:.1f}B"
            if m["parameters"] >= 1e9
            else f"{m['parameters'] / 1e6:.0f}M",
        }
        for m in wizard.catalog()
    ]
    context = {"tiny": tiny, "helpers": helpers, "catalog": catalog, "section": "models"}
    return render(request, "endpoints/models.html", context)


def _endpoint(request: ProjectRequest, endpoint_id: int) -> Endpoint:
    return endpoint_get_for_user(user=request.user, project_id=request.project.pk, endpoint_id=endpoint_id)


@require_GET
@project_view()
def endpoint_detail(request: ProjectRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    context = {
        "endpoint": endpoint, "gateway": gateway_url(request), "section": "endpoints",
        "polling": endpoint.active and endpoint.status in (EndpointStatus.PENDING, EndpointStatus.LOADING),
        "exports": exports.available(endpoint), "hub_error": request.session.pop("hub_error", None),
        # A chained job's adapter sits on its parent job's merged model: say whose.
        "base_job": job_of_model(endpoint.base, project_id=endpoint.project_id) if endpoint.job else None,
    }  # fmt: skip
    if request.htmx and request.GET.get("part") == "status":
        return render(request, "endpoints/detail.html#status", context)
    return render(request, "endpoints/detail.html", context)


@require_POST
@project_view(edit=True)
def endpoint_action(request: ProjectRequest, endpoint_id: int, action: str) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    if action == "undeploy":
        endpoint_undeploy(endpoint=endpoint, user=request.user)
        messages.success(
            request, f"{endpoint.name} is undeployed; its engine stops when no endpoint uses it."
        )
    elif action == "redeploy":
        try:
            endpoint_redeploy(endpoint=endpoint, user=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Deploying {endpoint.name} again.")
    else:
        raise Http404("No such action.")
    return redirect("endpoint-detail", request.project.pk, endpoint.pk)


@require_GET
@project_view()
def endpoint_export(request: ProjectRequest, endpoint_id: int, what: str) -> HttpResponseBase:
    endpoint = _endpoint(request, endpoint_id)
    return exports.download(endpoint, what)


@require_POST
@project_view(edit=True)
def endpoint_push(request: ProjectRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    try:
        url = exports.push_to_hub(
            endpoint,
            what=request.POST.get("what", "adapter"),
            repo_id=request.POST.get("repo_id", "").strip(),
            token=request.POST.get("token", "").strip(),
            private=bool(request.POST.get("private")),
        )
    except exports.ExportError as exc:
        if exports.available(endpoint):
            request.session["hub_error"] = str(exc)  # shown beside the push form
        else:
            messages.error(request, str(exc))  # no export section on the page to show it in
    else:
        messages.success(request, f"Pushed to the Hugging Face Hub: {url}")
    return redirect(reverse("endpoint-detail", args=[request.project.pk, endpoint.pk]) + "#export")


@require_POST
@project_view(edit=True)
def endpoint_merge(request: ProjectRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    try:
        exports.merge_start(endpoint)
    except exports.ExportError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, "Merging the adapter into its base model; the download appears here when done."
        )
    return redirect(reverse("endpoint-detail", args=[request.project.pk, endpoint.pk]) + "#export")


# API keys ------------------------------------------------------------------------------------------------


@require_POST
@project_view(edit=True)
def api_key_new(request: ProjectRequest) -> HttpResponse:
    form = KeyForm(request.POST)
    if form.is_valid():
        try:
            api_key, key = api_key_create(
                project=request.project, user=request.user, name=form.cleaned_data["name"]
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            # Shown once, on the next page, then gone: only its hash is stored.
            request.session["new_api_key"] = {"name": api_key.name, "key": key}
    elif not request.POST.get("name", "").strip():
        messages.error(request, "Give the key a name, to tell it apart later.")
    else:  # too long: say so, rather than ask for a name that was given
        messages.error(request, "The key's name: " + " ".join(str(e) for e in form.errors.get("name") or []))
    return redirect(reverse("endpoint-list", args=[request.project.pk]) + "#keys")


@require_POST
@project_view(edit=True)
def api_key_revoke_view(request: ProjectRequest, key_id: int) -> HttpResponse:
    api_key = api_key_get_for_user(user=request.user, project_id=request.project.pk, key_id=key_id)
    api_key_revoke(api_key=api_key, user=request.user)
    messages.success(request, f"The key “{api_key.name}” is revoked: requests with it now get 401.")
    return redirect(reverse("endpoint-list", args=[request.project.pk]) + "#keys")


# Playground ----------------------------------------------------------------------------------------------


@require_GET
@project_view()
def playground(request: ProjectRequest) -> HttpResponse:
    endpoints = list(endpoint_list_for_project(project_id=request.project.pk, include_stopped=False))
    ids = {e.pk: e for e in endpoints}

    def pick(name: str) -> Endpoint | None:
        value = request.GET.get(name, "")
        return ids.get(int(value)) if value.isdigit() else None

    first = pick("a") or (endpoints[0] if endpoints else None)
    second = pick("b")
    context = {
        "endpoints": endpoints, "first": first, "second": second, "gateway": gateway_url(request),
        "section": "endpoints",
    }  # fmt: skip
    return render(request, "endpoints/playground.html", context)


async def playground_chat(request: HttpRequest, project_id: int, endpoint_id: int) -> HttpResponseBase:
    """The playground's chat: the same path to the engine as /v1/chat/completions, with the browser's
    session (and CSRF token) instead of an API key. Streams server-sent events."""
    if request.method != "POST":
        return error_response(ApiError(405, "Use POST."))
    user = await request.auser()
    if not user.is_authenticated:  # read by the playground's script: a JSON answer, not a login page
        return error_response(ApiError(401, "Log in first: the playground needs a signed-in session."))
    try:
        membership = await sync_to_async(membership_get_for_user)(user=user, project_id=project_id)
        endpoint = await sync_to_async(endpoint_get_for_user)(
            user=user, project_id=project_id, endpoint_id=endpoint_id
        )
    except Http404:
        return error_response(ApiError(404, "No such endpoint in this project.", code="model_not_found"))
    if not membership.can_edit:
        return error_response(
            ApiError(403, VIEWER_REFUSED, type="permission_error", code="permission_denied")
        )
    try:
        body = json.loads(request.body or b"{}")
        body = {**(body if isinstance(body, dict) else {}), "model": endpoint.name, "stream": True}
        body["stream_options"] = {"include_usage": True}
        check(body, "chat/completions")
        return await forward(endpoint, "chat/completions", body)
    except ValueError:
        return error_response(ApiError(400, "The request is not valid JSON."))
    except ApiError as exc:
        return error_response(exc)
