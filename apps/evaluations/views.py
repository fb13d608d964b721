"""Evaluation pages: the list with the form for a new evaluation, the report with its sample browser,
and the exports (one self-contained HTML file, JSONL, CSV)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods

from apps.core.forms import form_kept, grader_option_fields, grader_options_clean, initial_from
from apps.core.http import ProjectRequest
from apps.endpoints.forms import EndpointChoiceField, judge_endpoint_choices
from apps.endpoints.selectors import builtin_endpoint
from apps.evaluations import present, selectors, services
from apps.jobs.models import Job, Kind, Status
from apps.jobs.selectors import job_get_for_user
from apps.jobs.wizard import python_grader_problem, tiny_path
from apps.projects.decorators import VIEWER_REFUSED, project_view
from apps.secrets.outbound import url_problem
from apps.secrets.services import judge_key_save, key_choices
from workers.training import graders as grading

STATIC_CSS = Path(__file__).resolve().parents[2] / "static" / "css"


def _trained_jobs(project_id: int) -> list[Job]:
    return list(
        Job.objects.filter(project_id=project_id, kind=Kind.TRAINING, status=Status.SUCCEEDED).order_by(
            "-created_at"
        )[:100]
    )


class EvaluationForm(forms.Form):
    candidate = forms.TypedChoiceField(coerce=int, label="Model to evaluate (a finished job)")
    baseline = forms.CharField(initial="base", label="Compare with")
    others = forms.TypedMultipleChoiceField(coerce=int, required=False, label="Also compare")
    dataset = forms.CharField(initial="heldout", label="Evaluate on")
    graders = forms.MultipleChoiceField(
        choices=[(name, g.label) for name, g in grading.REGISTRY.items()], required=False,
        initial=["exact_match"], widget=forms.CheckboxSelectMultiple, label="Graders",
    )  # fmt: skip
    text_metrics = forms.BooleanField(
        required=False, initial=True, label="ROUGE-L and BLEU against the reference"
    )
    judge_endpoint = EndpointChoiceField(
        required=False, label="AI judge: one of this project's endpoints",
        help_text="Reached through the gateway with a key made for this evaluation only. Or give a URL below.",
    )  # fmt: skip
    # A CharField, not a URLField: the outbound policy's messages say more than "Enter a valid URL".
    judge_url = forms.CharField(required=False, max_length=2000, label="AI judge: OpenAI-compatible base URL")
    judge_model = forms.CharField(required=False, max_length=200, label="Judge model")
    judge_new_key = forms.CharField(
        required=False, max_length=4096, label="Or type the judge's key", widget=forms.PasswordInput(render_value=False),
        help_text="Saved once, encrypted, as the project secret “judge-HOST”; never shown again.",
    )  # fmt: skip
    judge_key = forms.ChoiceField(required=False, label="Judge's API key",
                                  help_text="One of the project's secrets (Settings → Secrets) or a variable of the workers' environment.")  # fmt: skip
    rubric = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Rubric")
    judge_scores = forms.BooleanField(required=False, initial=True, label="Rubric score for each answer")
    judge_pairwise = forms.BooleanField(
        required=False, initial=True, label="Pairwise: which answer is better (both orders)"
    )
    benchmarks = forms.CharField(required=False, max_length=500, label="Named benchmarks (lm-evaluation-harness)",
                                 help_text="Comma-separated task names; only data already on this machine is used.")  # fmt: skip
    max_rows = forms.IntegerField(
        min_value=1, max_value=100_000, initial=services.DEFAULT_MAX_ROWS, label="At most this many rows"
    )
    max_new_tokens = forms.IntegerField(min_value=1, max_value=8192, initial=services.DEFAULT_MAX_NEW_TOKENS,
                                        label="Longest answer (tokens)")  # fmt: skip

    def __init__(
        self, *args: Any, jobs: list[Job], datasets: list[Any], keys: list[tuple[str, str]],
        endpoints: list[tuple[str, str]] | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.option_names = list(grader_option_fields())
        self.fields.update(grader_option_fields())  # each grader's options (graders.GraderInfo)
        self.fields["judge_key"].choices = keys  # type: ignore[attr-defined]
        self.fields["judge_endpoint"].choices = endpoints or [("", "None")]  # type: ignore[attr-defined]
        choices = [(j.pk, f"#{j.pk} {j.name} ({j.technique.upper()})") for j in jobs]
        self.fields["candidate"].choices = choices  # type: ignore[attr-defined]
        self.fields["others"].choices = choices  # type: ignore[attr-defined]
        self.jobs = {j.pk: j for j in jobs}
        self.datasets = {str(d.pk): d for d in datasets}
        if problem := python_grader_problem():
            self.fields["python_code"].help_text = problem

    @property
    def option_fields(self) -> list[Any]:
        return [self[name] for name in self.option_names]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("judge_endpoint") and (data.get("judge_url") or data.get("judge_model")):
            self.add_error(
                "judge_endpoint", "Choose the judge once: one of the project's endpoints, or a URL and model."
            )
        elif bool(data.get("judge_url")) != bool(data.get("judge_model")):
            self.add_error("judge_model", "A judge needs both its URL and its model name.")
        if data.get("judge_url") and (problem := url_problem(data["judge_url"])):
            self.add_error("judge_url", problem)
        graders = data.get("graders") or []
        data["grader_options"] = grader_options_clean(self, graders)
        if "python" in graders and (problem := python_grader_problem()):
            self.add_error("python_code", problem)
        if data.get("baseline") not in ("base", *map(str, self.jobs)):
            self.add_error("baseline", "Choose the base model or a finished job.")
        if data.get("dataset") not in ("heldout", *self.datasets):
            self.add_error("dataset", "Choose the job's held-out rows or a dataset of this project.")
        elif data["dataset"] != "heldout" and (
            problem := eval_dataset_problem(self.datasets[data["dataset"]])
        ):
            self.add_error("dataset", problem)
        return data

    def spec(self) -> dict[str, Any]:
        data = self.cleaned_data
        job = self.jobs[data["candidate"]]
        options = data["grader_options"]
        judge: dict[str, Any] | None = None
        if data.get("judge_endpoint"):  # the worker's runner puts the gateway and a key for this run in place
            judge = {"endpoint": int(data["judge_endpoint"]), "base_url": "", "model": ""}
        elif data.get("judge_url"):
            judge = {
                "base_url": data["judge_url"],
                "model": data["judge_model"],
                "key": data.get("judge_key") or "",
            }
        if judge is not None:
            judge |= {"scores": data["judge_scores"], "pairwise": data["judge_pairwise"]}
            if data.get("rubric"):
                judge["rubric"] = data["rubric"]
        chosen = None if data["dataset"] == "heldout" else self.datasets[data["dataset"]]
        dataset = chosen.path if chosen else None
        baseline = None if data["baseline"] == "base" else self.jobs[int(data["baseline"])]
        return services.spec_for_job(
            job, baseline=baseline, others=[self.jobs[pk] for pk in data.get("others") or []],
            dataset=str(dataset) if dataset else None, graders=list(data.get("graders") or []), grader_options=options,
            judge=judge, text_metrics=data["text_metrics"], max_rows=data["max_rows"], max_new_tokens=data["max_new_tokens"],
            benchmarks=[b.strip() for b in (data.get("benchmarks") or "").split(",") if b.strip()],
            mapping=chosen.spec_mapping if chosen else None,
        )  # fmt: skip


def eval_dataset_problem(dataset: Any) -> str | None:
    """Why a dataset cannot be evaluated on under its mapping (no row with a prompt), said where it is
    chosen rather than when the evaluation runs; None when it can."""
    from workers.training import data as data_module
    from workers.training import heldout

    mapping = dataset.spec_mapping
    try:
        heldout.select_rows(dataset.path, mapping["column_map"], 1, mapping["data_format"])
    except (data_module.DataError, OSError) as exc:
        return f"{str(exc).rstrip('.')} on the dataset's page (Datasets → {dataset.name})."
    return None


def _datasets(project_id: int) -> list[Any]:
    from apps.datasets.models import Dataset

    return list(Dataset.objects.filter(project_id=project_id)[:100])


@require_http_methods(["GET", "POST"])
@project_view()
def evaluation_list(request: ProjectRequest) -> HttpResponse:
    jobs = _trained_jobs(request.project.pk)
    builtin_judge = builtin_endpoint(request.project.pk, "judge")
    initial = {"candidate": request.GET.get("job")}
    if builtin_judge is not None:  # deployed: the judge unless the person chooses another or none
        initial["judge_endpoint"] = str(builtin_judge.pk)
    form = EvaluationForm(request.POST or None, jobs=jobs, datasets=_datasets(request.project.pk),
                          keys=key_choices(project=request.project), endpoints=judge_endpoint_choices(project_id=request.project.pk),
                          initial=initial)  # fmt: skip
    kept = form_kept(request)  # back from "Deploy the built-in judge": the form as it was typed
    if kept is not None and request.method == "GET":
        form.initial.update(initial_from(form, kept[0]))
    if request.method == "POST":
        if not request.membership.can_edit:
            raise PermissionDenied(VIEWER_REFUSED)
        if form.is_valid():
            try:
                if typed := form.cleaned_data.get("judge_new_key"):  # kept as a secret, chosen by its name
                    form.cleaned_data["judge_key"] = judge_key_save(
                        project=request.project,
                        user=request.user,
                        url=form.cleaned_data.get("judge_url") or "",
                        value=typed,
                    )
                candidate = form.jobs[form.cleaned_data["candidate"]]
                spec = form.spec()
                if problem := services.judge_fit_problem(project_id=request.project.pk, spec=spec):
                    raise ValidationError({"judge_endpoint": problem})
                job = services.evaluation_create(project=request.project, user=request.user, spec=spec,
                                                 evaluates=candidate, compute_class=candidate.compute_class)  # fmt: skip
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, "The evaluation is queued; this page fills in as it runs.")
                return redirect("evaluation-report", project_id=request.project.pk, job_id=job.pk)
    page = Paginator(selectors.evaluation_list_for_project(project_id=request.project.pk), 20).get_page(
        request.GET.get("page")
    )
    rows: list[dict[str, Any]] = [{"job": e, "report": selectors.report_for(e)} for e in page]
    for row in rows:
        report = row["report"]
        row["primary"] = selectors.metric(report, report.get("primary")) if report else None
    context = {"form": form, "page": page, "rows": rows, "has_jobs": bool(jobs), "section": "evaluations",
               "builtin_judge": builtin_judge, "judge_built": (tiny_path("judge") / "config.json").exists()}  # fmt: skip
    return render(request, "evaluations/list.html", context, status=422 if form.errors else 200)


def _evaluation(request: ProjectRequest, job_id: int) -> Job:
    job = job_get_for_user(user=request.user, job_id=job_id, project_id=request.project.pk)
    if not job.is_evaluation:
        raise Http404("That job is not an evaluation.")
    return job


def _browser(request: ProjectRequest, job: Job, report: dict[str, Any]) -> dict[str, Any]:
    names = selectors.candidates(report)
    asked = request.GET.get("vs") or ""
    vs = asked if asked in names else (names[0] if names else "")
    show = request.GET.get("show") or "all"
    show = show if show in selectors.FILTERS else "all"
    query = (request.GET.get("q") or "").strip()[:200]
    rows = selectors.samples_filtered(report, selectors.samples_for(job), vs=vs, show=show, query=query)
    page = Paginator(rows, 20).get_page(request.GET.get("page"))
    return {"samples": page, "vs": vs, "show": show, "q": query, "filters": selectors.FILTERS, "candidates": names,
            "baseline": report.get("baseline"), "primary_key": report.get("primary")}  # fmt: skip


@require_GET
@project_view()
def evaluation_report(request: ProjectRequest, job_id: int) -> HttpResponse:
    job = _evaluation(request, job_id)
    report = selectors.report_for(job)
    context: dict[str, Any] = {"job": job, "section": "evaluations"}
    if report:
        context |= present.context(report) | _browser(request, job, report)
        if job.evaluates:
            context["hacking"] = selectors.reward_hacking(job.evaluates, report)
    if request.htmx and request.GET.get("part") == "samples":
        return render(request, "evaluations/report.html#samples", context)
    if request.htmx and job.ended:
        # Done: reload the whole page, which adds the sample browser and the exports.
        return HttpResponse(headers={"HX-Refresh": "true"})
    if request.htmx:
        return render(request, "evaluations/report.html#live", context)
    return render(request, "evaluations/report.html", context)


def _rows_for_export(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for s in samples:
        row: dict[str, Any] = {"row": s["row"], "prompt": s["prompt"], "reference": s.get("reference")}
        for label, out in (s.get("outputs") or {}).items():
            row[f"{label}: answer"] = out.get("text")
            for key, value in (out.get("scores") or {}).items():
                row[f"{label}: {key}"] = value
            row[f"{label}: loss"] = out.get("loss")
            row[f"{label}: tokens"] = out.get("tokens")
            if out.get("judge"):
                row[f"{label}: judge reasoning"] = out["judge"].get("reasoning")
        for label, p in (s.get("pairwise") or {}).items():
            if p:
                row[f"{label}: pairwise"] = p.get("outcome")
                row[f"{label}: orders disagreed"] = p.get("disagreed")
        for label, change in (s.get("change") or {}).items():
            row[f"{label}: change"] = change
        rows.append(row)
    return rows


@require_GET
@project_view()
def evaluation_export(request: ProjectRequest, job_id: int, fmt: str) -> HttpResponse:
    job = _evaluation(request, job_id)
    report = selectors.report_for(job)
    if report is None:
        raise Http404("This evaluation has no report yet.")
    samples = selectors.samples_for(job)
    name = f"evaluation-{job.pk}"
    if fmt == "jsonl":
        body = "".join(json.dumps(s) + "\n" for s in samples)
        response = HttpResponse(body, content_type="application/x-ndjson")
    elif fmt == "csv":
        rows = _rows_for_export(samples)
        columns: list[str] = []
        for row in rows:
            columns += [c for c in row if c not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    elif fmt == "html":
        css = "\n".join((STATIC_CSS / name).read_text() for name in ("atelier.css", "report.css"))
        hacking = selectors.reward_hacking(job.evaluates, report) if job.evaluates else None
        body = render_to_string("evaluations/export.html", {
            **present.context(report), "job": job, "css": css, "samples_all": samples, "baseline": report.get("baseline"),
            "candidates": selectors.candidates(report), "primary_key": report.get("primary"), "hacking": hacking,
        })  # fmt: skip
        response = HttpResponse(body, content_type="text/html")
    else:
        raise Http404("Export as html, jsonl or csv.")
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response
