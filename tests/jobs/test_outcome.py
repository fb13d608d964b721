"""Honest endings and what the job page shows during training, through the real ingestion code: the
trainer's events (workers.training.events.EventWriter, as the trainer writes them) are read by the
runner's tail into the job row, and the pages, the list and the API show the held-out curve, the
guardrails and a succeeded-but-worse outcome, whose Deploy asks for confirmation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from apps.core.formatting import duration, human, share
from apps.endpoints.models import Endpoint
from apps.jobs.models import Job, Outcome, Status
from apps.jobs.services import job_create
from workers.runner import _finish, _save_progress, _Tail, job_claim_next
from workers.training.events import EventWriter
from workers.training.folder import JobFolder

pytestmark = pytest.mark.django_db

COLLAPSE = (
    "The reward has been 0 for the first 20% of the steps (12 of 60): every completion scores 0, so "
    "there is nothing to learn from. Lower the learning rate (try a tenth of it) or start from a model "
    "that solves some rows already."
)
WORSE_REASON = "Held-out exact match fell from 25% to 0%, below its 95% interval (0%–6%)."


def finished_metrics(verdict: str = "worse") -> dict[str, Any]:
    """The finished event's metrics as contract.md states them."""
    return {
        "train_loss": 3.2, "global_step": 12, "heldout_before": 0.25, "heldout_after": 0.0,
        "heldout_interval_before": [0.14, 0.38], "heldout_interval_after": [0.0, 0.06],
        "heldout_grader": "Exact match", "heldout_rows": 50, "best_step": 4,
        "stopped_early": "Stopped at step 12 of 60: the reward was 0 for the first 20% of the steps.",
        "verdict": verdict, "verdict_reason": WORSE_REASON if verdict == "worse" else "Within the interval.",
    }  # fmt: skip


def write_collapse_events(path: Path, model: str = "/m") -> None:
    """What a run set to collapse writes: steps, held-out samples falling, guardrails, its ending."""
    events = EventWriter(path, to_stdout=False)
    events.emit("started", job_id="1", technique="rlvr", model=model, pid=1)
    events.emit("configured", hparams={"max_steps": 60}, parameters=1, rows=100)
    for step in (2, 4, 6, 8, 10, 12):
        events.emit("step", step=step, max_steps=60, metrics={"loss": 0.1 * step, "reward": 0.0,
                    "learning_rate": 0.1}, eta_seconds=4.0 * (60 - step))  # fmt: skip
        if step % 4 == 0:
            events.emit("heldout", step=step, score=0.25 if step == 4 else 0.0, n=32, grader="exact_match",
                        sample=True, best=step == 4)  # fmt: skip
        if step >= 6:  # raised at every log while it lasts: one message on the page
            events.emit("guardrail", step=step, code="reward_zero", level="warning",
                        message="The reward has been 0 since step 2: no completion scores anything.")  # fmt: skip
    events.emit("guardrail", step=12, code="reward_zero", level="stop", message=COLLAPSE)
    events.emit(
        "finished", artifacts={"model": model}, metrics=finished_metrics(), mlflow=None, cancelled=False
    )
    events.close()


def running_job(project, user, spec: dict[str, Any] | None = None) -> Job:
    # On a queue of its own: the session's training worker (alive in later tests) would claim it first.
    job_create(project=project, user=user, name="collapse", auto_evaluate=False, compute_class="test-unserved",
               spec=spec or {"technique": "rlvr", "model": "/m", "dataset": "/d.jsonl"})  # fmt: skip
    job = job_claim_next(queue="train-unserved", worker="w1")
    assert job is not None
    return job


def ingest(job: Job, events: Path, log: Path) -> Job:
    """The runner's supervising loop, once over the whole file, then its ending (exit status 0)."""
    tail = _Tail()
    tail.read(events)
    assert _save_progress(job, tail, log)
    _finish(job, 0, tail, log)
    job.refresh_from_db()
    return job


def worse_job(project, user, tmp_path: Path, model: str = "/m") -> Job:
    job = running_job(project, user)
    write_collapse_events(JobFolder(tmp_path).events, model=model)
    return ingest(job, JobFolder(tmp_path).events, JobFolder(tmp_path).log)


def test_a_run_that_ended_worse_than_its_base_succeeds_with_a_worse_outcome_and_its_reason(
    alice, alice_project, tmp_path
):
    job = worse_job(alice_project, alice, tmp_path)
    assert job.status == Status.SUCCEEDED and job.outcome == Outcome.WORSE and job.worse
    assert job.outcome_reason == WORSE_REASON and job.state_label == "Succeeded, but worse than its base"
    # The held-out samples join the chart's points of their step, beside loss and reward.
    assert [(p["step"], p["heldout"]) for p in job.heldout_curve] == [(4, 0.25), (8, 0.0), (12, 0.0)]
    assert job.metrics[1] == {"step": 4, "loss": 0.4, "reward": 0.0, "learning_rate": 0.1, "heldout": 0.25,
                              "heldout_n": 32, "heldout_grader": "exact_match", "heldout_best": True}  # fmt: skip
    # A warning raised at every log is one message (steps 6 to 12); the stop is its own.
    assert [(g["code"], g["level"], g["since"], g["step"]) for g in job.guardrails] == [
        ("reward_zero", "warning", 6, 12), ("reward_zero", "stop", 12, 12)
    ]  # fmt: skip
    assert job.guardrails[1]["message"] == COLLAPSE


@pytest.mark.parametrize("verdict", ["better", "same"])
def test_a_better_or_unchanged_run_is_a_plain_success(alice, alice_project, tmp_path, verdict):
    job = running_job(alice_project, alice)
    events = EventWriter(JobFolder(tmp_path).events, to_stdout=False)
    events.emit("finished", artifacts={"model": "/m"}, metrics=finished_metrics(verdict), cancelled=False)
    job = ingest(job, JobFolder(tmp_path).events, JobFolder(tmp_path).log)
    assert job.status == Status.SUCCEEDED and job.outcome == verdict and not job.worse
    assert job.state == "succeeded" and job.state_label == "Succeeded"


def test_a_run_without_held_out_rows_has_no_outcome(alice, alice_project, tmp_path):
    job = running_job(alice_project, alice)
    events = EventWriter(JobFolder(tmp_path).events, to_stdout=False)
    events.emit(
        "finished", artifacts={"model": "/m"}, metrics={"train_loss": 1.0, "verdict": None}, cancelled=False
    )
    job = ingest(job, JobFolder(tmp_path).events, JobFolder(tmp_path).log)
    assert job.status == Status.SUCCEEDED and job.outcome == "" and job.outcome_reason == ""


def test_guardrails_show_on_the_live_fragment_while_the_job_runs(client, alice, alice_project, tmp_path):
    job = running_job(alice_project, alice)
    events = EventWriter(JobFolder(tmp_path).events, to_stdout=False)
    events.emit("step", step=5, max_steps=60, metrics={"loss": 1.0, "reward": 0.0}, eta_seconds=754.0)
    events.emit("guardrail", step=5, code="zero_variance", level="warning",
                message="8 of 8 groups had the same reward for every completion: raise the temperature.")  # fmt: skip
    tail = _Tail()
    tail.read(JobFolder(tmp_path).events)
    assert _save_progress(job, tail, JobFolder(tmp_path).log)
    client.force_login(alice)
    fragment = client.get(
        reverse("job-detail", args=[alice_project.pk, job.pk]), headers={"HX-Request": "true"}
    )
    text = fragment.content.decode()
    assert 'data-testid="job-live"' in text and 'data-testid="guardrail" data-code="zero_variance"' in text
    assert "Step 5:</strong> 8 of 8 groups had the same reward" in text
    assert "about 13 min left (measured)" in text  # the step events' own ETA, in minutes
    api = client.get(reverse("api-job-detail", args=[alice_project.pk, job.pk])).json()
    assert api["guardrails"][0]["code"] == "zero_variance" and api["outcome"] is None


def test_the_job_page_the_list_and_the_api_show_succeeded_but_worse_with_one_held_out_pair(
    client, alice, alice_project, tmp_path
):
    job = worse_job(alice_project, alice, tmp_path)
    client.force_login(alice)
    page = client.get(reverse("job-detail", args=[alice_project.pk, job.pk])).content.decode()
    assert ">succeeded, but worse than its base</span>" in page and WORSE_REASON in page
    assert 'data-testid="job-worse"' in page and COLLAPSE in page and "Stopped at step 12:" in page
    # One before → after, labelled with its grader and rows, with both intervals; no second pair.
    assert "Held-out exact match on 50 rows" in page
    assert 'before 25.0% <span class="muted small">(14.0%–38.0%)</span> → after <strong>0.0%</strong>' in page
    assert "(0.0%–6.0%)" in page and page.count("→ after") == 1 and 'data-testid="before-after"' not in page
    assert "step 4 of 12: the best on the held-out sample" in page and "Stopped at step 12 of 60" in page
    assert 'name="confirm_worse"' in page  # Deploy asks first
    assert "ended at step 12 of the 60 planned" in page
    listing = client.get(reverse("job-list", args=[alice_project.pk]), {"status": "worse"}).content.decode()
    assert 'class="badge badge-worse" data-testid="job-state"' in listing
    assert "succeeded, but worse than its base" in listing
    api = client.get(reverse("api-job-detail", args=[alice_project.pk, job.pk])).json()
    assert (
        api["status"] == "succeeded" and api["outcome"] == "worse" and api["outcome_reason"] == WORSE_REASON
    )
    assert api["state_label"] == "Succeeded, but worse than its base"
    other = running_job(alice_project, alice)
    others = client.get(reverse("job-list", args=[alice_project.pk]), {"status": "worse"}).content.decode()
    assert f"#{other.pk}<" not in others and f"#{job.pk}<" in others
    listed = client.get(reverse("api-job-list", args=[alice_project.pk])).json()["jobs"]
    assert [(j["id"], j["outcome"]) for j in listed] == [(other.pk, None), (job.pk, "worse")]
    chart = client.get(reverse("job-metrics", args=[alice_project.pk, job.pk])).json()
    assert [p.get("heldout") for p in chart["points"] if "heldout" in p] == [0.25, 0.0, 0.0]


def test_deploying_a_worse_job_needs_a_confirmation_checked_on_the_server(
    client, alice, alice_project, tmp_path, tiny_model
):
    job = worse_job(alice_project, alice, tmp_path, model=str(tiny_model / "partial"))
    client.force_login(alice)
    url = reverse("job-deploy", args=[alice_project.pk, job.pk])
    refused = client.post(url, follow=True).content.decode()  # a form sent without the box ticked
    assert "This model scored worse than its base on the held-out rows" in refused
    assert "Tick “Deploy anyway”" in refused and not Endpoint.objects.exists()
    response = client.post(url, {"confirm_worse": "1"})
    endpoint = Endpoint.objects.get(job=job)
    assert response.url == reverse("endpoint-detail", args=[alice_project.pk, endpoint.pk])


def test_values_are_shown_as_people_write_them():
    assert human(0.0029999999999999996) == "3e-3" and human(2e-5) == "2e-5" and human(1.5e-4) == "1.5e-4"
    assert human(0.95) == "0.95" and human(1.0) == "1" and human(16) == "16"
    assert human(["exact_match", "contains", "json_schema"]) == "Exact match, Contains, JSON schema"
    assert human(True) == "yes" and human(False) == "no" and human(None) == "automatic"
    assert human("lora", "method") == "LoRA" and human("exact_match", "grader") == "Exact match"
    assert duration(42.4) == "42 s" and duration(700) == "12 min" and duration(3900) == "1 h 5 min"
    assert share(0.625) == "62.5%" and share(1.0) == "100.0%" and share(None) == "–"


def test_a_job_trained_before_the_one_held_out_function_shows_its_own_pair_once(
    client, alice, alice_project, tmp_path
):
    job = running_job(alice_project, alice)
    events = EventWriter(JobFolder(tmp_path).events, to_stdout=False)
    old = {"train_loss": 1.0, "eval_exact_match_before": 0.38, "eval_exact_match_after": 1.0}
    events.emit("finished", artifacts={"model": "/m"}, metrics=old, cancelled=False)
    job = ingest(job, JobFolder(tmp_path).events, JobFolder(tmp_path).log)
    assert job.outcome == "" and job.state_label == "Succeeded"
    client.force_login(alice)
    page = client.get(reverse("job-detail", args=[alice_project.pk, job.pk])).content.decode()
    assert "Held-out exact match</th>" in page and "before 38.0% → after <strong>100.0%</strong>" in page
    assert page.count("→ after") == 1 and "Kept checkpoint" not in page and "interval" not in page


def test_the_chart_has_one_point_per_step_in_order_whatever_order_the_events_came_in():
    from workers.runner import merge_points

    points = merge_points(
        [{"step": 10, "loss": 1.0}, {"step": 11, "loss": 0.9}], [{"step": 10, "heldout": 0.5}]
    )
    assert points == [{"step": 10, "loss": 1.0, "heldout": 0.5}, {"step": 11, "loss": 0.9}]
    points = merge_points(
        points, [{"step": 12, "heldout": 0.6}, {"step": 12, "loss": 0.8}, {"step": 9, "heldout": 0.1}]
    )
    assert [p["step"] for p in points] == [9, 10, 11, 12] and points[-1] == {
        "step": 12,
        "heldout": 0.6,
        "loss": 0.8,
    }
