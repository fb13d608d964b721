"""Job pages: the list, the job page with its live fragment and chart data, and the actions on a job."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core import fragments
from apps.core.formatting import human
from apps.core.forms import form_kept, initial_from
from apps.core.http import ProjectRequest
from apps.core.paging import BoundedPaginator
from apps.datasets import services as dataset_services
from apps.datasets.models import Dataset
from apps.endpoints.forms import judge_endpoint_choices
from apps.endpoints.selectors import builtin_endpoint
from apps.evaluations.selectors import evaluation_state
from apps.jobs import model_sources, wizard
from apps.jobs.models import Job, Status
from apps.jobs.selectors import (
    job_get_for_user,
    job_list_for_project,
    job_rows,
    queue_position,
    replica_states,
    row_shown,
)
from apps.jobs.services import COMPUTE_CLASSES, job_cancel, job_continue, job_create, job_move, job_retry
from apps.projects.decorators import project_view
from apps.secrets.services import key_choices
from workers.training import formats
from workers.training.hparams import LORA_RANKS
from workers.training.techniques import REGISTRY

log = logging.getLogger("atelier.wizard")
SORTS = {"newest": "-created_at", "oldest": "created_at", "name": "name", "status": "status"}
TECHNIQUES = (*REGISTRY, "evaluation")  # the job list's filter


@require_GET
@project_view()
def job_list(request: ProjectRequest) -> HttpResponse:
    status = request.GET.get("status") or ""
    technique = request.GET.get("technique") or ""
    sort = request.GET.get("sort") or "newest"
    sort = sort if sort in SORTS else "newest"
    jobs = job_list_for_project(
        project_id=request.project.pk,
        status=status or None,
        technique=technique if technique in TECHNIQUES else None,
        order=SORTS[sort],
    )
    paginator = BoundedPaginator(job_rows(jobs), 20)
    page = paginator.get_page(request.GET.get("page"))
    page.object_list = rows = list(page.object_list)
    now = timezone.now()
    shown = (request.project.pk, status, technique, sort)
    context = {
        "page": page, "status": status, "technique": technique, "sort": sort,
        "statuses": Status.choices, "techniques": TECHNIQUES, "sorts": SORTS, "section": "jobs",
        # The rendered filters and table are kept under what they show (apps/core/fragments).
        "head_key": fragments.key(*shown, request.membership.can_edit),
        "table_key": fragments.key(*shown, page.number, paginator.num_pages, paginator.more, paginator.bound,
                                   [row_shown(job, now) for job in rows]),
    }  # fmt: skip
    template = "jobs/list.html#table" if request.htmx else "jobs/list.html"
    return render(request, template, context)


def _job(request: ProjectRequest, job_id: int) -> Job:
    return job_get_for_user(user=request.user, job_id=job_id, project_id=request.project.pk)


@require_GET
@project_view()
def job_detail(request: ProjectRequest, job_id: int) -> HttpResponse:
    job = _job(request, job_id)
    context: dict[str, Any] = {
        "job": job,
        "position": queue_position(job),
        "section": "jobs",
        "mlflow_url": _mlflow_ui(),
    }
    if job.is_training:
        context |= evaluation_state(job)
    if job.resilience and job.is_training:
        context["resilience"] = replica_states(job)
    evaluation = context.get("evaluation")
    # Keep refreshing while the job runs, and after it while its evaluation does.
    context["polling"] = not job.ended or (evaluation is not None and not evaluation.ended)
    template = "jobs/detail.html#live" if request.htmx else "jobs/detail.html"
    return render(request, template, context)


def _mlflow_ui() -> str | None:
    """MLflow's UI as users reach it: through the app's proxy, behind the login (never the server)."""
    uri = settings.MLFLOW_TRACKING_URI
    return (
        reverse("mlflow", kwargs={"path": ""}).rstrip("/")
        if uri.startswith(("http://", "https://"))
        else None
    )


@require_GET
@project_view()
def job_metrics(request: ProjectRequest, job_id: int) -> JsonResponse:
    """The metric history for the job page's chart, and whether to keep asking."""
    job = _job(request, job_id)
    return JsonResponse({"status": job.status, "ended": job.ended, "points": job.metrics,
                         "guardrails": job.guardrails})  # fmt: skip


def _act(request: ProjectRequest, job_id: int, action: str) -> HttpResponse:
    job = _job(request, job_id)
    try:
        if action == "cancel":
            job_cancel(job=job, actor=request.user)
            messages.success(request, "Cancelling: the job stops at the end of its current step.")
        elif action == "retry":
            job = job_retry(job=job, actor=request.user)
            messages.success(request, "A new job with the same settings is queued.")
        elif action == "continue":
            job = job_continue(job=job, actor=request.user)
            messages.success(request, "A new job continues from this one's model.")
        else:
            job_move(job=job, actor=request.user, direction=request.POST.get("direction", ""))
            back = request.POST.get("next", "")
            if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
                return redirect(back)
            return redirect("job-list", project_id=request.project.pk)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("job-detail", project_id=request.project.pk, job_id=job.pk)


@require_POST
@project_view(edit=True)
def job_action(request: ProjectRequest, job_id: int, action: str) -> HttpResponse:
    if action not in ("cancel", "retry", "continue", "move"):
        raise Http404("No such action.")
    return _act(request, job_id, action)


@require_GET
@project_view()
def api_job_list(request: ProjectRequest) -> JsonResponse:
    jobs = job_list_for_project(project_id=request.project.pk)[:100]
    return JsonResponse({"jobs": [_as_json(job) for job in jobs]})


@require_GET
@project_view()
def api_job_detail(request: ProjectRequest, job_id: int) -> JsonResponse:
    job = _job(request, job_id)
    return JsonResponse({**_as_json(job), "queue_position": queue_position(job), "metrics": job.metrics})


def _as_json(job: Job) -> dict:
    return {
        "id": job.pk, "name": job.name, "kind": job.kind, "evaluates": job.evaluates_id, "technique": job.technique, "status": job.status,
        "step": job.step, "max_steps": job.max_steps, "progress": round(job.progress, 4),
        "eta_seconds": job.eta_seconds, "queue": job.queue, "compute_class": job.compute_class,
        "created_at": job.created_at.isoformat(), "finished_at": job.finished_at and job.finished_at.isoformat(),
        "result": job.result, "artifacts": job.artifacts, "mlflow_run_id": job.mlflow_run_id or None,
        "error": job.error or None,
        # "worse": succeeded, but its held-out score fell below its base's (status stays "succeeded").
        "outcome": job.outcome or None, "outcome_reason": job.outcome_reason or None, "state": job.state,
        "state_label": job.state_label, "guardrails": job.guardrails,
    }  # fmt: skip


# The wizard ----------------------------------------------------------------------------------------------


def _wizard(request: ProjectRequest, step: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    draft = context["draft"]
    done = wizard.reached(draft)
    context |= {"steps": wizard.STEPS, "step": step, "done": done, "section": "jobs"}
    return render(request, f"jobs/wizard/{step}.html", context, status=status)


def _to(step: str, request: ProjectRequest) -> HttpResponse:
    return redirect(f"wizard-{step}", project_id=request.project.pk)


@require_GET
@project_view(edit=True)
def wizard_start(request: ProjectRequest) -> HttpResponse:
    draft = wizard.draft_for(project=request.project, user=request.user)
    done = wizard.reached(draft)
    for step, _ in wizard.STEPS:
        if step not in done:
            return _to(step, request)
    return _to("review", request)


class ModelSourceForm(forms.Form):
    source = forms.CharField(required=False)
    hub_id = forms.CharField(required=False, max_length=200, label="Hugging Face model id")
    local_path = forms.CharField(required=False, max_length=500, label="Local folder")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        dirs = ", ".join(str(d) for d in model_sources.model_dirs())
        self.fields["local_path"].help_text = (
            f"A model or adapter folder inside {dirs}."
            if dirs
            else "This server offers no model folders: an administrator lists them in ATELIER_MODEL_DIRS."
        )


@require_http_methods(["GET", "POST"])
@project_view(edit=True)
def wizard_model(request: ProjectRequest) -> HttpResponse:
    draft = wizard.draft_for(project=request.project, user=request.user)
    saved = draft.data.get("model_form") or {}
    form = ModelSourceForm(request.POST or None, initial=saved or {"source": "partial"})
    if request.method == "POST" and form.is_valid():
        try:
            chosen = wizard.model_choose(project=request.project, user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            wizard.draft_save(draft, model_form=form.cleaned_data, **chosen)
            return _to("data", request)
    selected = form["source"].value() or "partial"
    context = {"draft": draft, "form": form, "selected": selected, "catalog": wizard.catalog(),
               "jobs": wizard.earlier_jobs(request.project)}  # fmt: skip
    return _wizard(request, "model", context, status=422 if form.errors else 200)


class DataForm(forms.Form):
    dataset = forms.CharField(required=False)
    file = forms.FileField(required=False, label="Upload JSONL, JSON, CSV, TSV or Parquet")
    format = forms.ChoiceField(
        choices=formats.choices(), initial=formats.AUTO, required=False, label="Format"
    )
    drop_bad = forms.BooleanField(required=False, label="Drop rows that do not fit (listed below)")
    long_rows = forms.ChoiceField(
        choices=[("truncate", "Cut them to fit (the end of their longest text)"), ("drop", "Drop them")],
        initial="truncate", required=False, widget=forms.RadioSelect, label="Rows longer than the model reads",
    )  # fmt: skip
    drop_duplicates = forms.BooleanField(
        required=False,
        label="Drop duplicate rows, also those equal but for case, punctuation and spaces (the first of each kept)",
    )
    drop_overlap = forms.BooleanField(
        required=False, label="Drop training rows whose prompt is in the eval file"
    )
    eval_choice = forms.ChoiceField(
        choices=[("auto", f"Hold out 10% automatically (from {wizard.HOLD_OUT_MIN} rows up)"), ("none", "No evaluation"),
                 ("file", "A separate eval file")],
        initial="auto", widget=forms.RadioSelect, label="Evaluation",
    )  # fmt: skip
    eval_dataset = forms.CharField(required=False)
    hub_id = forms.CharField(
        required=False,
        max_length=200,
        label="Hugging Face dataset",
        widget=forms.TextInput(attrs={"placeholder": "owner/name"}),
    )
    hub_subset = forms.CharField(required=False, max_length=100, label="Subset, if several")
    hub_split = forms.CharField(required=False, max_length=100, label="Split",
                                widget=forms.TextInput(attrs={"placeholder": "train"}))  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for target in formats.TARGETS:  # the mapping table: each needed column, from which file column
            self.fields[f"map_{target}"] = forms.CharField(required=False, max_length=200, label=target)

    def mapping(self) -> dict[str, Any]:
        """The mapping table as chosen ({needed column: file column}, the format)."""
        return dataset_services.posted_mapping(self.cleaned_data)


def _data_context(request: ProjectRequest, draft: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "demos": wizard.demo_datasets(),
        "datasets": Dataset.objects.filter(project=request.project)[:50],
        "max_mb": round(settings.DATASET_MAX_BYTES / 1024**2),
        # Each technique's accepted columns, as it declares them (techniques.base.Technique.formats).
        "formats": [(t.short, [f.columns for f in t.formats]) for t in REGISTRY.values()],
        "known_formats": formats.KNOWN.values(),
        "hold_out_min": wizard.HOLD_OUT_MIN,
    }
    key = draft.data.get("dataset_key")
    if key:
        try:
            source = wizard.dataset_source(request.project, key)
            mapping = draft.data.get("mapping") or {}
            found, shown = dataset_services.survey_with_preview(
                source["path"], mapping, label=source["label"], model=draft.data["model"],
                eval_path=draft.data.get("eval_dataset") if draft.data.get("eval_choice") == "file" else None,
                eval_mapping=draft.data.get("eval_mapping"),
            )  # fmt: skip
            report = found.as_dict()
            if source["dataset_id"]:  # converted to UTF-8 when it was uploaded: said as long as it is shown
                stored = (
                    Dataset.objects.filter(pk=source["dataset_id"]).values_list("survey", flat=True).first()
                )
                report |= dataset_services.provenance(stored)
            fitting = [c["good"] for c in found.checks.values() if c["good"]]
            context |= {"source": source, "survey": report, "rows": found.rows, "columns": found.file_columns,
                        "checks": found.checks, "mapping": formats.Mapping.of(mapping),
                        "targets": formats.TARGETS, "few_rows": bool(fitting) and max(fitting) < wizard.HOLD_OUT_MIN,
                        **shown}  # fmt: skip
        except ValidationError as exc:
            context["source_error"] = " ".join(exc.messages)
    return context


@require_http_methods(["GET", "POST"])
@project_view(edit=True)
def wizard_data(request: ProjectRequest) -> HttpResponse:
    draft = wizard.draft_for(project=request.project, user=request.user)
    if not draft.data.get("model"):
        return _to("model", request)
    saved = dict(draft.data.get("data_form") or {})
    chosen = formats.Mapping.of(draft.data.get("mapping"))
    saved |= {"format": chosen.format, **{f"map_{t}": c for t, c in chosen.columns.items()}}
    form = DataForm(request.POST or None, request.FILES or None, initial=saved)
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        key = values["dataset"]
        try:
            if values["file"]:
                uploaded = dataset_services.dataset_upload(
                    project=request.project, user=request.user, upload=values["file"]
                )
                key = f"dataset:{uploaded.pk}"
            elif values["hub_id"]:
                imported = dataset_services.dataset_from_hub(
                    project=request.project, user=request.user, repo_id=values["hub_id"],
                    subset=values["hub_subset"], split=values["hub_split"],
                )  # fmt: skip
                key = f"dataset:{imported.pk}"
            source = wizard.dataset_source(request.project, key)
            eval_path, eval_mapping = None, None
            if values["eval_choice"] == "file":
                eval_source = wizard.dataset_source(request.project, values["eval_dataset"])
                eval_path, eval_mapping = eval_source["path"], eval_source.get("mapping")
            dataset = (
                Dataset.objects.filter(pk=source["dataset_id"]).first() if source["dataset_id"] else None
            )
            if key != draft.data.get(
                "dataset_key"
            ):  # another file: its own mapping, not the table posted for the last
                mapping = dict(dataset.mapping) if dataset else {}
            else:
                mapping = form.mapping()
                columns = dataset.columns if dataset else dataset_services.file_columns(source["path"])
                if problem := dataset_services.mapping_problem(mapping, columns):
                    raise ValidationError({"format": problem})
            if dataset is not None:
                dataset_services.dataset_remap(dataset=dataset, mapping=mapping)
        except ValidationError as exc:
            if hasattr(exc, "error_dict") and "format" in exc.error_dict:
                form.add_error("format", exc.error_dict["format"])
            elif hasattr(exc, "error_dict") and "hub_id" in exc.error_dict:
                form.add_error("hub_id", exc.error_dict["hub_id"])
            elif (
                hasattr(exc, "error_dict")
                and "dataset" in exc.error_dict
                and values["eval_choice"] == "file"
                and key
            ):
                form.add_error("eval_dataset", "Choose the eval file.")
            else:
                form.add_error("file" if values["file"] else "dataset", exc.messages)
        else:
            chosen = formats.Mapping.of(mapping)
            kept = {
                k: v
                for k, v in values.items()
                if k not in ("file", "format") and not k.startswith(("map_", "hub_"))
            }
            kept["dataset"] = key
            wizard.draft_save(draft, data_form=kept, dataset_key=key, dataset=source["path"], dataset_label=source["label"],
                              mapping=chosen.as_dict(), column_map=formats.renames(chosen.columns), data_format=chosen.format,
                              drop_bad=values["drop_bad"], long_rows=values["long_rows"] or "truncate",
                              drop_duplicates=values["drop_duplicates"], drop_overlap=values["drop_overlap"],
                              eval_choice=values["eval_choice"], eval_dataset=eval_path, eval_mapping=eval_mapping)  # fmt: skip
            if request.POST.get("go") == "next":
                return _to("technique", request)
            return _to("data", request)
    context = {"draft": draft, "form": form, **_data_context(request, draft)}
    return _wizard(request, "data", context, status=422 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@project_view(edit=True)
def wizard_technique(request: ProjectRequest) -> HttpResponse:
    draft = wizard.draft_for(project=request.project, user=request.user)
    if not draft.data.get("dataset"):
        return _to("data", request)
    # Back from "Deploy the built-in judge": the step as it was typed, the new judge chosen.
    kept, _ = form_kept(request) or (None, "")
    chosen = (
        request.POST.get("technique") or request.GET.get("technique") or (kept.get("technique") if kept is not None else None)
        or draft.data.get("technique") or next(iter(REGISTRY))
    )  # fmt: skip
    if chosen not in REGISTRY:
        chosen = next(iter(REGISTRY))
    technique = REGISTRY[chosen]
    posted = request.method == "POST" and request.POST.get("technique") == chosen
    saved_params = dict(draft.data.get("params") or {}) if draft.data.get("technique") == chosen else {}
    builtin_judge = builtin_endpoint(request.project.pk, "judge") if technique.judged else None
    if builtin_judge and not any(
        saved_params.get(k) for k in ("judge_endpoint", "judge_url", "reward_model")
    ):
        saved_params["judge_endpoint"] = str(builtin_judge.pk)  # deployed: the judge unless told otherwise
    params_form = wizard.params_form_class(
        chosen, key_choices(project=request.project), judge_endpoint_choices(project_id=request.project.pk)
    )(request.POST if posted else None, initial=saved_params or None, prefix="p")
    training_form = wizard.TrainingForm(
        request.POST if posted else None, initial=draft.data.get("training") or None, prefix="t"
    )
    if kept is not None and not posted:
        params_form.initial.update(initial_from(params_form, kept))
        training_form.initial.update(initial_from(training_form, kept))
    checks: dict[str, Any] = {}
    try:
        checks = wizard.draft_checks(draft)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    if posted and params_form.is_valid() and training_form.is_valid():
        fits = checks.get(chosen) or {}
        try:
            params = wizard.clean_params(chosen, params_form)
            params = wizard.judge_key_keep(
                project=request.project, user=request.user, form=params_form, params=params
            )
            if technique.judged and (problem := wizard.judge_fit_problem(draft, chosen, params)):
                raise ValidationError({"judge_endpoint": problem})
            if not fits.get("ok") and not (draft.data.get("drop_bad") and fits.get("good")):
                raise ValidationError(
                    fits.get("message")
                    or f"{fits.get('error_count', 0)} rows of the dataset do not fit {technique.short}: go back to Data to fix or drop them."
                )
        except ValidationError as exc:
            params_form.add_error(None, exc)
        else:
            resilience = training_form.resilience(chosen)
            if not training_form.errors:
                wizard.draft_save(draft, technique=chosen, params=params, training=training_form.cleaned_data,
                                  resilience=resilience)  # fmt: skip
                return _to("review", request)
    _show_automatic(draft, chosen, training_form)
    cards = [{"key": k, "short": t.short, "title": t.title, "summary": t.summary, "fits": (checks.get(k) or {}).get("ok", False),
              "why": (checks.get(k) or {}).get("message", "")} for k, t in REGISTRY.items()]  # fmt: skip
    failed = params_form.errors or training_form.errors
    context = {
        "draft": draft,
        "chosen": chosen,
        "technique": technique,
        "can_try": technique.scorers is not None,
        "cards": cards,
        "params_form": params_form,
        "training_form": training_form,
        "builtin_judge": builtin_judge,
        "judge_built": (wizard.tiny_path("judge") / "config.json").exists(),
        # Where "Deploy the built-in judge" comes back to: this step, on this technique.
        "here": f"{request.path}?technique={chosen}",
    }
    return _wizard(request, "technique", context, status=422 if failed else 200)


def _show_automatic(draft: Any, technique: str, form: forms.Form) -> None:
    """Show, in the blank training fields, the values that would be chosen automatically."""
    from apps.jobs.models import Draft

    method = form["method"].value() or "lora"
    data = {**draft.data, "technique": technique, "params": {}, "training": {"method": method}}
    try:
        auto = wizard.review(Draft(project=draft.project, user=draft.user, data=data))["hparams"]
    except Exception:  # a page without hints beats one that fails; the review step explains the problem
        log.warning("no automatic values to show", exc_info=True)
        return
    for name in ("max_steps", "learning_rate", "batch_size"):
        form.fields[name].widget.attrs["placeholder"] = f"automatic: {human(auto[name])}"
    rank = form.fields["lora_rank"]
    if isinstance(rank, forms.ChoiceField):
        rank.choices = [("", f"automatic ({auto['lora_rank']})"), *((r, str(r)) for r in LORA_RANKS)]


@require_POST
@project_view(edit=True)
def wizard_try(request: ProjectRequest) -> HttpResponse:
    """The technique step's "Try" button: the model answers a few rows and the graders or judge score them."""
    draft = wizard.draft_for(project=request.project, user=request.user)
    chosen = request.POST.get("technique", "")
    trial: list[dict[str, Any]] = []
    problem = None
    tried = [t.short for t in REGISTRY.values() if t.scorers]
    if chosen not in REGISTRY or not REGISTRY[chosen].scorers or not draft.data.get("dataset"):
        problem = f"Choose {' or '.join(tried)} and a dataset first."
    else:
        form = wizard.params_form_class(
            chosen,
            key_choices(project=request.project),
            judge_endpoint_choices(project_id=request.project.pk),
        )(request.POST, prefix="p")
        if not form.is_valid():
            problem = "Fix the settings first: " + "; ".join(
                f"{k}: {' '.join(str(m) for m in v)}" for k, v in form.errors.items()
            )
        else:
            try:
                params = wizard.clean_params(chosen, form)
                params = wizard.judge_key_keep(
                    project=request.project, user=request.user, form=form, params=params
                )
                if REGISTRY[chosen].judged and (too_long := wizard.judge_fit_problem(draft, chosen, params)):
                    raise ValidationError(too_long)
                trial = wizard.try_rewards(draft, chosen, params)
            except ValidationError as exc:
                problem = " ".join(exc.messages)
    return render(request, "jobs/wizard/technique.html#trial", {"trial": trial, "trial_problem": problem})


@require_http_methods(["GET", "POST"])
@project_view(edit=True)
def wizard_review(request: ProjectRequest) -> HttpResponse:
    draft = wizard.draft_for(project=request.project, user=request.user)
    if not draft.data.get("technique"):
        return _to("technique", request)
    estimate: dict[str, Any] | None = None
    problem = None
    try:
        estimate = wizard.review(draft)
    except Exception as exc:  # noqa: BLE001 - the training layer's errors are written for people
        problem = str(exc)
    if request.method == "POST" and problem is None and estimate is not None:
        name = (request.POST.get("name") or "").strip()
        try:
            spec = wizard.materialize(draft)
            job = job_create(project=request.project, user=request.user, name=name, spec=spec,
                             compute_class=estimate["estimate"]["compute_class"], estimate=estimate,
                             labels={"model": draft.data["label"], "dataset": draft.data["dataset_label"]},
                             auto_evaluate=request.POST.get("auto_evaluate") == "1")  # fmt: skip
        except ValidationError as exc:
            problem = " ".join(exc.messages)
        else:
            draft.delete()
            messages.success(request, f"Job “{job.name}” is queued.")
            return redirect("job-detail", project_id=request.project.pk, job_id=job.pk)
    compute = (estimate or {}).get("estimate", {}).get("compute_class", "CPU")
    queue = settings.JOB_QUEUES.get(COMPUTE_CLASSES.get(compute, "cpu"), "train-cpu")
    context = {"draft": draft, "estimate": estimate, "problem": problem, "queue": queue,
               "default_name": f"{REGISTRY[draft.data['technique']].short} of {Path(str(draft.data.get('label', ''))).name or 'model'}"}  # fmt: skip
    return _wizard(request, "review", context, status=422 if problem else 200)


@require_POST
@project_view(edit=True)
def wizard_reset(request: ProjectRequest) -> HttpResponse:
    wizard.draft_for(project=request.project, user=request.user).delete()
    return _to("model", request)
