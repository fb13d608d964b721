"""A person in Chromium deploys the built-in judge and teacher from the forms that need them and from
the model catalog, and meets a judge and a teacher that read too little, refused on the form with the
numbers. Screenshots go to test-artifacts/ (ATELIER_TEST_ARTIFACTS). Nothing is asked of the models
(tests/endpoints/builtin.py), so no engine runs here: the endpoints stay pending."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.endpoints.models import Endpoint
from apps.endpoints.services import endpoint_deploy
from apps.projects.services import project_create
from tests.conftest import login
from tests.endpoints import builtin
from workers.training.judge import SCORE_TOKENS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _to_the_technique_step(page) -> None:
    """From the wizard's first step: the partly trained tiny model, the RLVR demo prompts, no evaluation."""
    page.get_by_label(re.compile("Atelier tiny \\(partly trained\\)")).check()
    page.get_by_role("button", name="Next: data").click()
    page.get_by_label("…or choose a dataset").select_option("demo:reverse/rlvr.jsonl")
    page.get_by_label("No evaluation").check()
    page.get_by_role("button", name="Next: technique").click()
    expect(page.get_by_test_id("step-technique")).to_be_visible()
    page.wait_for_load_state("load")  # htmx (deferred) listens for the technique's radio from here on


def test_the_rlaif_step_deploys_the_built_in_judge_and_refuses_one_that_reads_too_little(
    page, alice, artifacts_dir, tiny_model, tmp_path
):
    builtin.helpers(tiny_model)
    project = project_create(user=alice, name="Reverser")
    small = endpoint_deploy(project=project, user=alice, name="small-judge",
                            model=str(builtin.reads_at_most(tiny_model, tmp_path / "small", 256)))  # fmt: skip
    login(page, "alice")
    page.goto(f"/projects/{project.pk}/models/")
    block = page.get_by_test_id("builtin-helpers")
    expect(block).to_contain_text(
        "Scores answers to the reverse demo task, for RLAIF and evaluation reports."
    )
    expect(block).to_contain_text("Writes reverse-task datasets in Generate data.")
    page.screenshot(path=artifacts_dir / "builtin-catalog.png", full_page=True)

    page.get_by_role("link", name="Customize a model").first.click()
    _to_the_technique_step(page)
    page.get_by_label(re.compile(r"\(RLAIF\)")).check()
    # The step plans the automatic values on the way (the first time, with the training layer's imports).
    expect(page.get_by_role("heading", name="RLAIF settings")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("builtin-deploy-judge")).to_be_visible()
    page.get_by_role("textbox", name="Rubric").fill("The letters of the word, in the opposite order.")
    page.get_by_role("spinbutton", name="Max steps").fill("30")
    page.get_by_role("button", name="Deploy the built-in judge").click()

    judge = Endpoint.objects.get(name="atelier-tiny-judge")
    expect(page.get_by_text("is deployed as atelier-tiny-judge and chosen below")).to_be_visible()
    expect(page.get_by_role("combobox", name="Judge endpoint")).to_have_value(str(judge.pk))
    expect(page.get_by_role("textbox", name="Rubric")).to_have_value(
        "The letters of the word, in the opposite order."
    )
    expect(page.get_by_role("spinbutton", name="Max steps")).to_have_value("30")
    expect(page.get_by_test_id("builtin-deploy-judge")).to_have_count(0)
    page.screenshot(path=artifacts_dir / "builtin-rlaif-judge-chosen.png", full_page=True)

    page.get_by_role("combobox", name="Judge endpoint").select_option(str(small.pk))
    page.get_by_role("spinbutton", name="Max completion length").fill("200")
    page.get_by_role("button", name="Next: review").click()
    refusal = page.locator(".field.has-errors", has=page.get_by_role("combobox", name="Judge endpoint"))
    expect(refusal).to_contain_text(re.compile(rf"The judge's longest request is [\d,]+ tokens and it may answer with {SCORE_TOKENS}; "
                                               r"the endpoint small-judge \(.+\) reads at most 256 tokens\."))  # fmt: skip
    page.screenshot(path=artifacts_dir / "builtin-rlaif-judge-refused.png", full_page=True)

    # Enter in a field submits the step (its first button is Next), never the Deploy button.
    page.get_by_role("combobox", name="Judge endpoint").select_option(str(judge.pk))
    page.get_by_role("spinbutton", name="Max completion length").fill("16")
    page.get_by_role("spinbutton", name="Max steps").press("Enter")
    expect(page.get_by_test_id("step-review")).to_be_visible()
    assert Endpoint.objects.count() == 2

    page.goto(f"/projects/{project.pk}/models/")
    expect(page.get_by_test_id("helper-judge")).to_contain_text("atelier-tiny-judge")
    page.screenshot(path=artifacts_dir / "builtin-catalog-judge-deployed.png", full_page=True)


def test_generate_data_deploys_the_built_in_teacher_and_refuses_one_that_reads_too_little(
    page, alice, artifacts_dir, tiny_model, tmp_path
):
    builtin.helpers(tiny_model)
    project = project_create(user=alice, name="Reverser")
    small = endpoint_deploy(project=project, user=alice, name="small-teacher",
                            model=str(builtin.reads_at_most(tiny_model, tmp_path / "small", 256)))  # fmt: skip
    login(page, "alice")
    page.goto(f"/projects/{project.pk}/datasets/generate/")
    page.get_by_role("textbox", name="Description").fill(
        "Reverse the letters of a word: the user gives letters separated by spaces."
    )
    seeds = '{"prompt": "reverse: c a t", "completion": "t a c"}\n{"prompt": "reverse: d o g", "completion": "g o d"}'
    page.get_by_role("textbox", name="Seeds").fill(seeds)
    page.get_by_role("spinbutton", name="Rows").fill("12")
    page.get_by_role("button", name="Deploy the built-in teacher").click()

    teacher = Endpoint.objects.get(name="atelier-tiny-teacher")
    expect(page.get_by_text("is deployed as atelier-tiny-teacher and chosen below")).to_be_visible()
    expect(page.get_by_role("combobox", name="Endpoint:", exact=True)).to_have_value(str(teacher.pk))
    expect(page.get_by_label("One of this project's endpoints")).to_be_checked()
    expect(page.get_by_role("textbox", name="Seeds")).to_have_value(seeds)
    expect(page.get_by_role("spinbutton", name="Rows")).to_have_value("12")
    page.screenshot(path=artifacts_dir / "builtin-generate-teacher-chosen.png", full_page=True)

    page.get_by_role("combobox", name="Endpoint:", exact=True).select_option(str(small.pk))
    page.get_by_test_id("propose-topics").click()
    refusal = page.locator(
        ".field.has-errors", has=page.get_by_role("combobox", name="Endpoint:", exact=True)
    )
    expect(refusal).to_contain_text(re.compile(
        r"The teacher's longest request is [\d,]+ tokens and it may answer with 512; the endpoint small-teacher "
        r"\(.+\) reads at most 256 tokens\. Shorten the description, give fewer seeds, or choose a teacher that reads more\."
    ))  # fmt: skip
    page.screenshot(path=artifacts_dir / "builtin-generate-teacher-refused.png", full_page=True)


@pytest.mark.services
def test_try_the_judge_shows_the_built_in_judges_real_scores_through_the_gateway(
    asgi_page, alice, artifacts_dir, tiny_model, engine_supervisor
):
    """The Try table with the deployed built-in judge's own scores (served by the built-in engine, asked
    through the gateway with a key for that try): every answer scored 0 or 1, none unparsed, each with
    the judge's reasoning."""
    from apps.endpoints.services import endpoint_deploy_builtin
    from tests.endpoints.conftest import wait_ready

    page = asgi_page
    project = project_create(user=alice, name="Judged")
    judge = endpoint_deploy_builtin(project=project, user=alice, variant="judge")
    wait_ready(judge.pk)
    login(page, "alice")
    page.goto(f"/projects/{project.pk}/customize/")
    _to_the_technique_step(page)
    page.get_by_label(re.compile(r"\(RLAIF\)")).check()
    expect(page.get_by_role("heading", name="RLAIF settings")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("combobox", name="Judge endpoint")).to_have_value(str(judge.pk))
    page.get_by_role("button", name="Try on 4 rows").click()
    rows = page.get_by_test_id("trial").locator("tbody tr")
    expect(rows).to_have_count(4, timeout=120_000)
    for i in range(4):
        expect(rows.nth(i)).to_contain_text(re.compile(r"judge: (0\.00|1\.00)"))
        expect(rows.nth(i)).not_to_contain_text("no score")
        # Its reasoning beside the score: the check, ending with the last pair's mark.
        expect(rows.nth(i)).to_contain_text(re.compile(r"judge: Check: .*: (right|wrong)"))
    page.get_by_test_id("try").scroll_into_view_if_needed()
    page.screenshot(path=artifacts_dir / "builtin-try-the-judge.png", full_page=True)
    judge.refresh_from_db()
    assert judge.requests >= 4
