"""The Datasets page (datasets and generations), a new generation, and a generation's page: its topic
tree to edit, its progress, and the rows to curate and save as a dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.forms import form_kept, initial_from
from apps.core.http import ProjectRequest
from apps.datasets import services as dataset_services
from apps.datasets.models import Dataset
from apps.endpoints.models import Endpoint
from apps.endpoints.selectors import builtin_endpoint
from apps.jobs.models import Job, Kind, Status
from apps.jobs.selectors import job_get_for_user
from apps.jobs.wizard import tiny_path
from apps.projects.decorators import VIEWER_REFUSED, project_view
from apps.secrets.services import key_choices
from apps.synthetic import services
from apps.synthetic.forms import GenerationForm, TopicsForm
from apps.synthetic.models import GeneratedRow, Verdict
from workers.training.synthetic import schema
from workers.training.techniques import REGISTRY


@require_http_methods(["GET", "POST"])
@project_view()
def dataset_list(request: ProjectRequest) -> HttpResponse:
    project = request.project
    error = None
    upload = request.FILES.get("file")
    if request.method == "POST" and not request.membership.can_edit:
        raise PermissionDenied(VIEWER_REFUSED)
    if request.method == "POST" and isinstance(upload, UploadedFile):
        try:
            dataset = dataset_services.dataset_upload(project=project, user=request.user, upload=upload)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, f"{dataset.name}: {dataset.rows} row{pluralize(dataset.rows)} checked.")
            return redirect("dataset-list", project.pk)
    hub = {k: str(request.POST.get(k) or "").strip() for k in ("hub_id", "hub_subset", "hub_split")}
    hub_error = None
    if request.method == "POST" and hub["hub_id"]:
        try:
            dataset = dataset_services.dataset_from_hub(project=project, user=request.user, repo_id=hub["hub_id"],
                                                        subset=hub["hub_subset"], split=hub["hub_split"])  # fmt: skip
        except ValidationError as exc:
            hub_error = " ".join(exc.messages)
        else:
            messages.success(request, f"{dataset.name}: {dataset.rows} row{pluralize(dataset.rows)} checked.")
            return redirect("dataset-detail", project.pk, dataset.pk)
    generations = Job.objects.filter(project=project, kind=Kind.SYNTHESIS, parent__isnull=True).order_by(
        "-created_at"
    )
    context = {
        "datasets": Dataset.objects.filter(project=project), "generations": generations[:20], "error": error,
        "hub": hub, "hub_error": hub_error,
        "techniques": dataset_services.TECHNIQUES, "section": "datasets",
    }  # fmt: skip
    return render(request, "synthetic/datasets.html", context, status=422 if error or hub_error else 200)


def _form(request: ProjectRequest, teacher: Endpoint | None) -> GenerationForm:
    project = request.project
    endpoints = [(str(e.pk), e.name) for e in Endpoint.objects.filter(project=project, active=True)]
    datasets = [(str(d.pk), d.name) for d in Dataset.objects.filter(project=project)]
    initial = {
        "technique": request.GET.get("technique", next(iter(REGISTRY))),
        "teacher": "endpoint" if endpoints else "url",
    }
    if teacher is not None:  # the built-in teacher, deployed: chosen unless the person picks another
        initial |= {"teacher": "endpoint", "teacher_endpoint": str(teacher.pk)}
    form = GenerationForm(
        request.POST or None, request.FILES or None, endpoints=endpoints, datasets=datasets,
        keys=key_choices(project=project), project_id=project.pk, initial=initial,
    )  # fmt: skip
    # Back from "Deploy the built-in teacher": the form as it was typed, with that teacher chosen.
    if request.method == "GET" and (kept := form_kept(request)) is not None:
        data, use = kept
        form.initial.update(initial_from(form, data))
        if use == "teacher_endpoint":
            form.initial["teacher"] = "endpoint"
    return form


@require_http_methods(["GET", "POST"])
@project_view(edit=True)
def generation_new(request: ProjectRequest) -> HttpResponse:
    builtin_teacher = builtin_endpoint(request.project.pk, "teacher")
    form = _form(request, builtin_teacher)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        technique = data["technique"]
        try:
            seeds = services.seeds_parse(data["seeds"], technique)
            if data["seed_dataset"]:
                dataset = Dataset.objects.get(project=request.project, pk=data["seed_dataset"])
                seeds += services.seeds_from_dataset(dataset, technique)
        except ValidationError as exc:
            form.add_error("seeds", exc)
        documents: list[str] = []
        try:
            documents = services.documents_save(project=request.project, files=data["documents"])
        except ValidationError as exc:
            form.add_error("documents", exc)
        teacher, label = _teacher(request, data)
        if not form.errors and (problem := services.teacher_fit_problem(
            project_id=request.project.pk, technique=technique, description=data["description"],
            teacher=teacher, seeds=seeds, documents=documents,
        )):  # fmt: skip
            form.add_error("teacher_endpoint" if "endpoint" in teacher else "teacher_local", problem)
        if not form.errors:
            try:
                job = services.generation_start(
                    project=request.project, user=request.user, technique=technique, description=data["description"],
                    rows=data["rows"], teacher=teacher, seeds=seeds, documents=documents, label=label,
                    weak={"local": data["weak_local"].strip()} if REGISTRY[technique].synthetic.needs_worse and data["weak_local"].strip() else None,
                )  # fmt: skip
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                return redirect("generation-detail", request.project.pk, job.pk)
        services.documents_discard(documents)  # not started: nothing of it is kept
    context = {
        "form": form, "section": "datasets", "builtin_teacher": builtin_teacher,
        "teacher_built": (tiny_path("teacher") / "config.json").exists(),
    }  # fmt: skip
    return render(request, "synthetic/new.html", context)


def _teacher(request: ProjectRequest, data: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if data["teacher"] == "endpoint":
        endpoint = Endpoint.objects.get(project=request.project, pk=data["teacher_endpoint"])
        return {"endpoint": endpoint.pk}, f"endpoint {endpoint.name}"
    if data["teacher"] == "local":
        return {"local": data["teacher_local"].strip()}, data["teacher_local"].strip()
    teacher = {"base_url": data["teacher_url"].strip(), "model": data["teacher_model"]}
    if data["teacher_key"]:
        teacher["key"] = data["teacher_key"]  # the secret's name; the runner puts its value in place
    return teacher, data["teacher_model"]


def _root(request: ProjectRequest, job_id: int) -> Job:
    job = job_get_for_user(user=request.user, job_id=job_id, project_id=request.project.pk)
    if not job.is_synthesis:
        raise Http404("No such generation.")
    return job.generation_root


@require_http_methods(["GET", "POST"])
@project_view()
def generation_detail(request: ProjectRequest, job_id: int) -> HttpResponse:
    root = _root(request, job_id)
    if root.pk != job_id:
        return redirect("generation-detail", request.project.pk, root.pk)
    runs = list(Job.objects.filter(parent=root, kind=Kind.SYNTHESIS).order_by("-created_at"))
    current = runs[0] if runs else None
    # The tree of the latest run, as the person left it; before any run, the teacher's proposal.
    tree = (
        (current.spec.get("topics") if current else None)
        or _read(root.files.topics)
        or root.spec.get("topics")
    )
    topics_form = TopicsForm(
        request.POST or None,
        initial={"topics": services.topics_text(tree) if tree else "", "rows": root.spec.get("rows")},
    )
    if request.method == "POST":
        if not request.membership.can_edit:
            raise PermissionDenied(VIEWER_REFUSED)
        if topics_form.is_valid():
            try:
                tree = services.topics_parse(topics_form.cleaned_data["topics"])
                spec = root.spec
                if problem := services.teacher_fit_problem(
                    project_id=request.project.pk, technique=spec["technique"], description=spec["description"],
                    teacher=spec["teacher"], seeds=spec.get("seeds"), documents=spec.get("documents"), topics=tree,
                ):  # fmt: skip
                    raise ValidationError(problem)
                run = services.generation_run(
                    root=root, user=request.user, tree=tree, rows=topics_form.cleaned_data["rows"]
                )
            except ValidationError as exc:
                topics_form.add_error("topics", exc)
            else:
                messages.success(
                    request, f"Generating {run.spec['rows']} rows over {len(schema.leaves(tree))} topics."
                )
                return redirect("generation-detail", request.project.pk, root.pk)
    context: dict[str, Any] = {
        "root": root, "current": current, "runs": runs, "tree": tree, "topics_form": topics_form,
        "section": "datasets", "polling": not root.ended or (current is not None and not current.ended),
    }  # fmt: skip
    if current is not None and current.status == Status.SUCCEEDED:
        context |= _curation(request, current)
    if request.htmx and request.GET.get("part") == "progress":
        response = render(request, "synthetic/detail.html#progress", context)
        if not context["polling"]:
            response["HX-Refresh"] = "true"  # a stage ended: the whole page changes (topics, then the rows)
        return response
    return render(request, "synthetic/detail.html", context)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except ValueError:
        return None


def _curation(request: ProjectRequest, job: Job) -> dict[str, Any]:
    rows = GeneratedRow.objects.filter(job=job)
    topic = request.GET.get("topic", "")
    verdict = request.GET.get("verdict", "")
    shown = rows.filter(topic=topic) if topic else rows
    shown = shown.filter(verdict=verdict) if verdict in Verdict.values else shown
    counts = {v: rows.filter(verdict=v).count() for v in Verdict.values}
    return {
        "summary": _read(job.files.summary) or {}, "page": Paginator(shown, 25).get_page(request.GET.get("page")),
        "topics": sorted(set(rows.values_list("topic", flat=True))), "topic": topic, "verdict": verdict,
        "counts": counts, "total": sum(counts.values()), "verdicts": Verdict.choices,
        "fields": REGISTRY[job.spec["technique"]].synthetic.row_columns,
    }  # fmt: skip


def _current(request: ProjectRequest, job_id: int) -> Job:
    job = job_get_for_user(user=request.user, job_id=job_id, project_id=request.project.pk)
    if not job.is_synthesis or job.status != Status.SUCCEEDED:
        raise Http404("No such generation.")
    return job


@require_POST
@project_view(edit=True)
def generation_rows(request: ProjectRequest, job_id: int) -> HttpResponse:
    """Accept or reject the chosen rows (or every row shown)."""
    job = _current(request, job_id)
    ids = [int(i) for i in request.POST.getlist("row") if i.isdigit()]
    verdict = request.POST.get("verdict", "")
    # "Accept all" is its own button value: the page sends no script to set a hidden field (CSP).
    if verdict == "accepted-all" or request.POST.get("scope") == "all":
        ids = list(GeneratedRow.objects.filter(job=job).values_list("pk", flat=True))
        verdict = "accepted" if verdict == "accepted-all" else verdict
    try:
        changed = services.rows_set_verdict(job=job, user=request.user, ids=ids, verdict=verdict)
    except ValidationError as exc:  # a verdict other than accept or reject: said on the page, not a 500
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{changed} row{'s' if changed != 1 else ''} marked {verdict}.")
    back = request.POST.get("back", "")
    return redirect(
        reverse("generation-detail", args=[request.project.pk, job.generation_root.pk])
        + (back if back.startswith("?") else "")
    )


@require_POST
@project_view(edit=True)
def generation_row_edit(request: ProjectRequest, job_id: int, row_id: int) -> HttpResponse:
    job = _current(request, job_id)
    row = GeneratedRow.objects.filter(job=job, pk=row_id).first()
    if row is None:
        raise Http404("No such row.")
    error = None
    try:
        row = services.row_edit(
            row=row, user=request.user, data={k: request.POST.get(k, "") for k in row.data}
        )
    except ValidationError as exc:
        error = " ".join(exc.messages)
    context = {"row": row, "job": job, "error": error, "saved": error is None,
               "fields": list(row.data), "root": job.generation_root}  # fmt: skip
    return render(request, "synthetic/detail.html#row", context)


@require_POST
@project_view(edit=True)
def generation_save(request: ProjectRequest, job_id: int) -> HttpResponse:
    job = _current(request, job_id)
    try:
        dataset = services.generation_save_dataset(
            job=job, user=request.user, name=request.POST.get("name", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("generation-detail", request.project.pk, job.generation_root.pk)
    messages.success(
        request,
        f"Saved {dataset.rows} rows as {dataset.name}: choose it on the wizard's data step to train on it.",
    )
    return redirect("dataset-list", request.project.pk)
