"""The evaluation report in Chromium: a training job's automatic evaluation runs on the real worker
(on the session's fully fine-tuned tiny model, not trained again), the job page shows before → after,
the report and its sample browser are screenshotted, and the exported HTML opens with networking off
showing the same headline numbers."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.evaluations.services import evaluation_after_training
from apps.jobs.models import Job, Status
from tests.conftest import login
from tests.evaluations.conftest import trained_job

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_the_automatic_report_after_sft_shows_exact_match_from_at_most_5_to_at_least_90_percent(
    page,
    browser,
    alice,
    alice_project,
    artifacts_dir,
    tiny_model,
    full_sft,
    celery_trainer,
    mlflow_service,
    tmp_path,
):
    training = trained_job(alice_project, alice, full_sft[0], base=str(tiny_model / "base"))
    Job.objects.filter(pk=training.pk).update(auto_evaluate=True)
    training.refresh_from_db()
    evaluation = evaluation_after_training(training)  # what the worker calls when a training job succeeds
    assert evaluation is not None

    login(page, "alice")
    page.goto(reverse("job-detail", args=[alice_project.pk, training.pk]))
    shown = page.get_by_test_id("before-after")
    expect(shown).to_be_visible(timeout=180_000)
    evaluation.refresh_from_db()
    assert evaluation.status == Status.SUCCEEDED and evaluation.attempts == 1, evaluation.error
    before, after = (float(x) for x in re.findall(r"<strong>([\d.]+)%</strong>", shown.inner_html()))
    assert before <= 5 and after >= 90, (before, after)
    page.screenshot(path=artifacts_dir / "evaluation-job-page.png", full_page=True)

    page.get_by_test_id("job-evaluation").get_by_test_id("open-report").click()
    headline = page.get_by_test_id("headline")
    expect(headline).to_contain_text("Exact match")
    numbers = page.locator("[data-testid^=value-], [data-testid^=delta-]").all_inner_texts()
    assert page.get_by_test_id("value-exact_match-base").inner_text() == before_text(before)
    page.screenshot(path=artifacts_dir / "evaluation-report.png", full_page=True)

    browser_section = page.get_by_test_id("sample-browser")
    browser_section.get_by_label("improved").check()
    expect(page.locator("[data-testid=sample][data-change=improved]").first).to_be_visible()
    assert (
        page.locator("[data-testid=sample]").count()
        == page.locator("[data-testid=sample][data-change=improved]").count()
        > 0
    )
    page.get_by_test_id("sample-browser").scroll_into_view_if_needed()
    page.screenshot(path=artifacts_dir / "evaluation-samples-improved.png", full_page=True)
    page.get_by_test_id("sample-search").fill("s i m p l y")
    expect(page.locator("[data-testid=sample]")).to_have_count(1)
    expect(page.locator("[data-testid=sample]")).to_contain_text("y l p m i s")

    with page.expect_download() as download:
        page.get_by_test_id("export-html").click()
    exported = tmp_path / "report.html"
    download.value.save_as(exported)
    offline = browser.new_context(offline=True)
    requests: list[str] = []
    offline.on("request", lambda r: requests.append(r.url))
    view = offline.new_page()
    view.goto(exported.as_uri())
    expect(view.get_by_test_id("headline")).to_contain_text("Exact match")
    assert view.locator("[data-testid^=value-], [data-testid^=delta-]").all_inner_texts() == numbers
    assert [u for u in requests if not u.startswith("file://")] == []
    view.screenshot(path=artifacts_dir / "evaluation-export-offline.png", full_page=True)
    offline.close()

    # By hand: the same model against its base on ten rows, with a regex grader as well.
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Evaluations").click()
    expect(page.get_by_test_id("evaluations")).to_contain_text("succeeded")
    form = page.get_by_test_id("new-evaluation")
    form.get_by_label("Matches the pattern", exact=True).check()  # the grader's label, as the report names it
    form.get_by_label("Regex pattern").fill("[a-z ]+")
    form.get_by_label("At most this many rows").fill("10")
    page.screenshot(path=artifacts_dir / "evaluation-new.png", full_page=True)
    page.get_by_test_id("start-evaluation").click()
    expect(page.get_by_test_id("headline")).to_contain_text("Matches the pattern", timeout=120_000)
    expect(page.get_by_test_id("headline")).to_contain_text("10 rows")
    page.screenshot(path=artifacts_dir / "evaluation-by-hand.png", full_page=True)


def before_text(value: float) -> str:
    return f"{value:.1f}%"
