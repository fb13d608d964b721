"""A run set to collapse, in Chromium: its events (written as the trainer writes them, read by the
runner's real tail) end it early as succeeded-but-worse; the job page shows that state with its reason,
the guardrail's words, the held-out curve beside loss and reward, and a Deploy that asks first; the jobs
list shows the state too. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.endpoints.models import Endpoint
from tests.conftest import login
from tests.jobs.test_outcome import COLLAPSE, WORSE_REASON, worse_job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_collapsed_run_shows_as_worse_with_the_guardrail_and_the_held_out_chart(
    page, alice, alice_project, tiny_model, tmp_path, redis_service, artifacts_dir
):
    job = worse_job(alice_project, alice, tmp_path, model=str(tiny_model / "partial"))
    login(page, "alice")
    page.goto(reverse("job-detail", args=[alice_project.pk, job.pk]))
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded, but worse than its base")
    expect(page.get_by_test_id("job-worse")).to_contain_text(WORSE_REASON)
    stop = page.locator('[data-testid="guardrail"].level-stop')
    expect(stop).to_contain_text(COLLAPSE)
    expect(stop).to_contain_text("Stopped at step 12:")
    expect(page.get_by_test_id("heldout-label")).to_have_text("Held-out exact match on 50 rows")
    expect(page.get_by_test_id("heldout-before-after")).to_contain_text(
        "before 25.0% (14.0%–38.0%) → after 0.0% (0.0%–6.0%)"
    )
    expect(page.get_by_test_id("stopped-early")).to_contain_text("Stopped at step 12 of 60")
    # The chart (uPlot, from the metrics URL) draws the held-out sample beside loss and reward.
    legend = page.get_by_test_id("job-chart").locator(".u-legend")
    for label in ("Loss", "Reward", "Held-out score (sample)"):
        expect(legend).to_contain_text(label)
    expect(page.locator("#chart-empty")).to_be_hidden()
    page.screenshot(path=artifacts_dir / "job-worse.png", full_page=True)

    # Deploy asks first: the browser will not send the form until the box is ticked.
    page.get_by_test_id("deploy").click()
    assert page.url.endswith(reverse("job-detail", args=[alice_project.pk, job.pk]))
    assert not Endpoint.objects.exists()
    page.get_by_test_id("confirm-worse").locator("input").check()
    page.get_by_test_id("deploy").click()
    page.wait_for_url(lambda url: "/endpoints/" in url)
    assert Endpoint.objects.get().job_id == job.pk

    page.goto(reverse("job-list", args=[alice_project.pk]))
    state = page.get_by_test_id("job-state")
    expect(state).to_have_text("succeeded, but worse than its base")
    expect(state).to_have_attribute("title", WORSE_REASON)
    page.screenshot(path=artifacts_dir / "jobs-worse.png", full_page=True)


def test_a_real_run_at_a_far_too_high_learning_rate_ends_early_and_worse_on_its_page(
    page, alice, alice_project, tiny_model, celery_trainer, artifacts_dir
):
    """The same story from a real GRPO run on the real worker: the one setting chosen is the bad one (a
    learning rate of 0.1); the trainer's guardrails stop it, and the page says worse, and why."""
    from apps.jobs.models import Status
    from apps.jobs.services import job_create
    from tests.harness import wait_for_job
    from workers.training import tiny

    reverse_demo = tiny.DEMO / "reverse"
    spec = {
        "technique": "rlvr", "model": str(tiny_model / "partial"), "dataset": str(reverse_demo / "rlvr.jsonl"),
        "eval_dataset": str(reverse_demo / "eval.jsonl"),
        "training": {"method": "full", "max_steps": 40, "learning_rate": 0.1, "save_steps": 1000},
    }  # fmt: skip
    job = wait_for_job(
        job_create(project=alice_project, user=alice, name="too hot", spec=spec, auto_evaluate=False), 600
    )
    assert job.status == Status.SUCCEEDED and job.outcome == "worse", (job.error, job.result)
    assert job.step < 40 and job.result["stopped_early"]
    login(page, "alice")
    page.goto(reverse("job-detail", args=[alice_project.pk, job.pk]))
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded, but worse than its base")
    expect(page.get_by_test_id("job-worse")).to_contain_text(job.outcome_reason)
    guardrails = page.get_by_test_id("guardrail")
    expect(guardrails.first).to_be_visible()
    # Which guardrail fires first depends on the CPU's arithmetic (on an Intel Xeon, the reward stuck at
    # 0: "… Lower the learning rate if it was higher before, …"); those that can fire here say to lower it.
    expect(page.get_by_test_id("guardrails")).to_contain_text(re.compile("lower the learning rate", re.I))
    expect(page.get_by_test_id("stopped-early")).to_contain_text(job.result["stopped_early"])
    expect(page.get_by_test_id("job-chart").locator(".u-legend")).to_contain_text("Held-out score (sample)")
    page.screenshot(path=artifacts_dir / "job-collapsed-real.png", full_page=True)
