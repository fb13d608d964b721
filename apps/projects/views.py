from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core import fragments
from apps.core.http import AuthedRequest, ProjectRequest
from apps.jobs.models import ACTIVE, ENDED, Job
from apps.jobs.selectors import job_rows, row_shown
from apps.projects.decorators import project_view, remembered_project
from apps.projects.forms import MemberAddForm, MemberRoleForm, ProjectForm
from apps.projects.models import Membership, Project
from apps.projects.selectors import (
    membership_get_for_user,
    membership_list_for_project,
    project_list_for_user,
)
from apps.projects.services import membership_add, membership_remove, membership_set_role, project_create

# The sections of a project in the order of the wizard: (title, what it is for, the page's URL name).
SECTIONS = {
    "models": (
        "Models",
        "Pick a base model: the built-in tiny model, a catalog of open models, a Hugging Face id or a local folder, with its memory and time cost.",
        "model-catalog",
    ),
    "datasets": (
        "Datasets",
        "Upload a dataset, validated row by row and previewed through the model's chat template, or generate one with a teacher model.",
        "dataset-list",
    ),
    "jobs": (
        "Jobs",
        "Customize a model with SFT, DPO, RLVR or RLAIF, and watch the job: progress, charts, logs.",
        "job-list",
    ),
    "endpoints": (
        "Endpoints",
        "Deploy a model with one click to an OpenAI-compatible endpoint and try it in a playground.",
        "endpoint-list",
    ),
}


@login_required
@require_GET
def home(request: AuthedRequest) -> HttpResponse:
    """The current project's dashboard, else the first project, else the page to create one."""
    projects = project_list_for_user(user=request.user)
    current_id = remembered_project(request)
    project = projects.filter(pk=current_id).first() if current_id else None
    project = project or projects.first()
    if project is None:
        return redirect("project-list")
    return redirect("project-dashboard", project_id=project.pk)


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request: AuthedRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = project_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Project “{project.name}” created.")
            if request.htmx:
                response = HttpResponse(status=204)
                response["HX-Redirect"] = project_dashboard_url(project)
                return response
            return redirect("project-dashboard", project_id=project.pk)
    status = 422 if form.errors else 200
    template = "projects/list.html#create-form" if request.htmx else "projects/list.html"
    context = {"form": form, "projects": project_list_for_user(user=request.user)}
    return render(request, template, context, status=status)


def project_dashboard_url(project: Project) -> str:
    return reverse("project-dashboard", kwargs={"project_id": project.pk})


@require_GET
@project_view()
def project_dashboard(request: ProjectRequest) -> HttpResponse:
    jobs = job_rows(Job.objects.filter(project=request.project))
    running = list(jobs.filter(status__in=ACTIVE).order_by("position")[:10])
    recent = list(jobs.filter(status__in=ENDED).order_by("-finished_at")[:5])
    now, project, membership = timezone.now(), request.project, request.membership
    context = {
        "sections": SECTIONS,
        "running_jobs": running,
        "recent_jobs": recent,
        # The rendered page is kept under what it shows (apps/core/fragments).
        "page_key": fragments.key(
            project.pk, project.name, project.description, membership.role, membership.can_edit,
            [row_shown(job, now) for job in running], [row_shown(job, now) for job in recent],
        ),
    }  # fmt: skip
    return render(request, "projects/dashboard.html", context)


@require_http_methods(["GET", "POST"])
@project_view()
def project_members(request: ProjectRequest) -> HttpResponse:
    project: Project = request.project
    form = MemberAddForm(request.POST or None)
    if request.method == "POST":
        if not request.membership.can_manage:
            raise PermissionDenied("Only the project's owners can add members.")
        if form.is_valid():
            try:
                added = membership_add(project=project, actor=request.user, **form.cleaned_data)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(
                    request, f"{added.user.get_username()} joined as {added.get_role_display().lower()}."
                )
                return redirect("project-members", project_id=project.pk)
    context = {
        "form": form,
        "memberships": membership_list_for_project(project=project),
        "role_form": MemberRoleForm(),
    }
    return render(request, "projects/members.html", context, status=422 if form.errors else 200)


def _membership_in(request: ProjectRequest, membership_id: int) -> Membership:
    return get_object_or_404(Membership, pk=membership_id, project=request.project)


@require_POST
@project_view(manage=True)
def project_member_role(request: ProjectRequest, membership_id: int) -> HttpResponse:
    membership = _membership_in(request, membership_id)
    form = MemberRoleForm(request.POST)
    if form.is_valid():
        try:
            membership_set_role(membership=membership, actor=request.user, role=form.cleaned_data["role"])
            messages.success(
                request, f"{membership.user.get_username()} is now {membership.get_role_display().lower()}."
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    else:
        messages.error(request, "Choose owner, member or viewer.")
    return redirect("project-members", project_id=membership.project_id)


@require_POST
@project_view(manage=True)
def project_member_remove(request: ProjectRequest, membership_id: int) -> HttpResponse:
    membership = _membership_in(request, membership_id)
    try:
        membership_remove(membership=membership, actor=request.user)
        messages.success(request, f"{membership.user.get_username()} was removed from the project.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("project-members", project_id=membership.project_id)


# JSON routes: the same selectors, so the same 404 for anything outside the user's projects.


def _project_json(project: Project, membership: Membership | None = None) -> dict:
    data = {
        "id": project.pk,
        "name": project.name,
        "description": project.description,
        "created_at": project.created_at.isoformat(),
    }
    if membership is not None:
        data["role"] = membership.role
    return data


@require_GET
def api_project_list(request: AuthedRequest) -> JsonResponse:
    if not request.user.is_authenticated:
        return JsonResponse({"error": "Log in first."}, status=401)
    memberships = Membership.objects.filter(user=request.user).select_related("project")
    return JsonResponse({"projects": [_project_json(m.project, m) for m in memberships]})


@require_GET
def api_project_detail(request: AuthedRequest, project_id: int) -> JsonResponse:
    if not request.user.is_authenticated:
        return JsonResponse({"error": "Log in first."}, status=401)
    try:
        membership = membership_get_for_user(user=request.user, project_id=project_id)
    except Http404:
        return JsonResponse({"error": "No such project."}, status=404)
    data = _project_json(membership.project, membership)
    data["members"] = [
        {"username": m.user.get_username(), "role": m.role}
        for m in membership_list_for_project(project=membership.project)
    ]
    return JsonResponse(data)
