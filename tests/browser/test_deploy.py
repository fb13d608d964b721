"""Deploy in Chromium: Deploy on a finished job, the endpoint becomes ready on its own, and the playground
streams an answer from the customized tiny model that equals, with greedy decoding, what the job's
evaluation produced for that prompt. Served by uvicorn with the real engine supervisor and engine."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.endpoints.models import Endpoint
from tests.conftest import login
from tests.evaluations.conftest import evaluation_with_report, trained_job
from workers.training import tiny
from workers.training.data import eval_row

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_deploy_then_the_playground_streams_the_answer_the_evaluation_saw(
    asgi_page, alice, alice_project, tiny_model, full_sft, evaluated, engine_supervisor, artifacts_dir
):
    page = asgi_page
    training = trained_job(alice_project, alice, full_sft[0], base=str(tiny_model / "base"))
    evaluation = evaluation_with_report(alice_project, alice, training, evaluated)
    samples = [json.loads(line) for line in evaluation.files.samples.read_text().splitlines()]
    sample = next(s for s in samples if len(s["outputs"]["customized"]["text"]) >= 7)
    rows = (tiny.DEMO / "reverse" / "eval.jsonl").read_text().splitlines()
    prompt = eval_row(json.loads(rows[sample["row"]]))["prompt"]  # type: ignore[index]
    assert len(prompt) == 1 and prompt[0]["role"] == "user"

    login(page, "alice")
    page.goto(reverse("job-detail", args=[alice_project.pk, training.pk]))
    page.get_by_test_id("deploy").click()
    expect(page.get_by_test_id("endpoint-status")).to_have_text("ready", timeout=120_000)
    endpoint = Endpoint.objects.get(job=training)
    assert (
        endpoint.engine
        and endpoint.engine.pid
        and endpoint.name in page.get_by_test_id("snippet-python").inner_text()
    )
    page.screenshot(path=artifacts_dir / "deploy-endpoint.png", full_page=True)

    page.get_by_test_id("try-it").click()
    expect(page.get_by_test_id("endpoint-a")).to_have_value(str(endpoint.pk))
    # Count how often the answer's text changes while it arrives: streaming shows it grow, token by token.
    page.evaluate("""() => {
        window.updates = new Set();
        new MutationObserver(() => {
            const answer = document.querySelector('[data-testid=chat-a] .msg-assistant');
            if (answer) window.updates.add(answer.textContent);
        }).observe(document.querySelector('[data-testid=chat-a]'), {childList: true, subtree: true, characterData: true});
    }""")
    page.get_by_label("Temperature").fill("0")
    page.get_by_test_id("message").fill(prompt[0]["content"])
    page.get_by_test_id("send").click()
    answer = page.locator("[data-testid=chat-a] .msg-assistant[data-done=true]")
    expect(answer).to_be_visible(timeout=60_000)
    assert answer.inner_text().strip() == sample["outputs"]["customized"]["text"].strip()
    assert answer.get_attribute("data-finish") == "stop"
    assert page.evaluate("window.updates.size") >= 3  # it grew in steps, not all at once
    page.screenshot(path=artifacts_dir / "deploy-playground.png", full_page=True)
    endpoint.refresh_from_db()
    assert endpoint.requests == 1 and endpoint.completion_tokens > 0
