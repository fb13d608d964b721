"""A dataset's own page: its rows (searched, paged), what the survey found, which techniques it fits and
why not, its format and column mapping (editable), its bad lines; download and delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.http import ProjectRequest
from apps.datasets import services
from apps.datasets.models import Dataset
from apps.projects.decorators import project_view
from workers.training import formats

VIEWER_REFUSED = "Viewers cannot change datasets."


def _dataset(request: ProjectRequest, dataset_id: int) -> Dataset:
    found = Dataset.objects.filter(project=request.project, pk=dataset_id).first()
    if found is None:  # another project's dataset is as absent as one that never was
        raise Http404("No such dataset in this project.")
    return found


def _token_models(request: ProjectRequest) -> list[tuple[str, str]]:
    """The models whose tokenizer can measure the rows: the wizard's current choice, the built-in."""
    from apps.jobs.models import Draft
    from apps.jobs.wizard import tiny_path

    choices = [(str(tiny_path("partial")), "Atelier tiny")]
    draft = Draft.objects.filter(project=request.project, user=request.user).first()
    if draft and draft.data.get("model") and draft.data["model"] != choices[0][0]:
        choices.insert(0, (str(draft.data["model"]), str(draft.data.get("label") or draft.data["model"])))
    return choices


@require_http_methods(["GET", "POST"])
@project_view()
def dataset_detail(request: ProjectRequest, dataset_id: int) -> HttpResponse:
    dataset = _dataset(request, dataset_id)
    error = None
    if request.method == "POST":
        if not request.membership.can_edit:
            raise PermissionDenied(VIEWER_REFUSED)
        mapping = services.posted_mapping(request.POST)
        try:
            if problem := services.mapping_problem(mapping, list(dataset.columns)):
                raise ValidationError(problem)
            services.dataset_remap(dataset=dataset, mapping=mapping)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, "Mapping saved; the checks below are under it.")
            return redirect("dataset-detail", project_id=request.project.pk, dataset_id=dataset.pk)
    models = _token_models(request)
    model = request.GET.get("model") or models[0][0]
    if model not in dict(models):
        model = models[0][0]
    context: dict[str, Any] = {
        "dataset": dataset, "mapping": formats.Mapping.of(dataset.mapping), "targets": formats.TARGETS,
        "format_choices": formats.choices(), "models": models, "model": model, "error": error, "section": "datasets",
    }  # fmt: skip
    try:  # token lengths and long rows need the model's tokenizer: measured here, under the saved mapping
        found, shown = services.survey_with_preview(
            dataset.file, dataset.mapping, label=dataset.name, model=model
        )
        context |= {
            "survey": found.as_dict() | services.provenance(dataset.survey),
            "checks": found.checks,
            **shown,
        }
    except ValidationError as exc:
        context |= {
            "survey": dataset.survey,
            "checks": dataset.checks,
            "source_error": " ".join(exc.messages),
        }
    context["has_errors"] = bool(context["survey"].get("unreadable_count")) or any(
        c.get("error_count") for c in context["checks"].values()
    )
    rows, more = services.browse(dataset)
    context |= {"rows": rows, "more": more, "page": 1, "query": ""}
    return render(request, "datasets/detail.html", context, status=422 if error else 200)


@require_GET
@project_view()
def dataset_rows(request: ProjectRequest, dataset_id: int) -> HttpResponse:
    """The rows browser (htmx): a page of rows, searched."""
    dataset = _dataset(request, dataset_id)
    query = request.GET.get("q", "")[:200]
    try:
        page = max(1, int(request.GET.get("page") or 1))
    except ValueError:
        page = 1
    rows, more = services.browse(dataset, query=query, page=page)
    context = {"dataset": dataset, "rows": rows, "more": more, "page": page, "query": query}
    return render(request, "datasets/detail.html#rows", context)


@require_GET
@project_view()
def dataset_download(request: ProjectRequest, dataset_id: int) -> FileResponse:
    dataset = _dataset(request, dataset_id)
    if not dataset.file.exists():
        raise Http404("The dataset's file is gone.")
    return FileResponse(dataset.file.open("rb"), as_attachment=True, filename=dataset.name)


@require_POST
@project_view(edit=True)
def dataset_delete(request: ProjectRequest, dataset_id: int) -> HttpResponse:
    dataset = _dataset(request, dataset_id)
    name = dataset.name
    services.dataset_delete(dataset=dataset, user=request.user)
    messages.success(request, f"{name} is deleted; jobs trained on it keep their own copy of its rows.")
    return redirect("dataset-list", request.project.pk)
