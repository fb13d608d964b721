"""Synthetic data in Chromium: generate rows with the built-in teacher (deployed as an endpoint, served by
the built-in engine, asked through the gateway), review the topics it proposes, curate its real rows
(accept some, reject some, edit one), save them as a dataset and launch SFT on it from the wizard, on the
real training worker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.datasets.models import Dataset
from apps.endpoints.services import endpoint_deploy_builtin
from apps.jobs.models import Job, Kind
from apps.projects.services import project_create
from tests.conftest import login
from tests.endpoints.conftest import wait_ready

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_generate_curate_save_and_train_on_synthetic_data(
    asgi_page,
    alice,
    artifacts_dir,
    tiny_model,
    engine_supervisor,
    celery_worker,
    celery_trainer,
    mlflow_service,
    tmp_path,
):
    page = asgi_page
    project = project_create(user=alice, name="Reverser")
    teacher = endpoint_deploy_builtin(project=project, user=alice, variant="teacher")
    wait_ready(teacher.pk)
    document = tmp_path / "guide.md"
    document.write_text("# Reversing\n\nRead the letters of the word from the last to the first.")
    login(page, "alice")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Datasets").click()
    page.get_by_test_id("generate-data").click()
    page.get_by_label("Technique").select_option("sft")
    page.get_by_label("Description").fill("Reverse the letters of a word, separated by spaces.")
    page.get_by_label("Rows").fill("8")
    page.get_by_label("Seeds:", exact=True).fill('{"prompt": "reverse: s u n", "completion": "n u s"}')
    page.get_by_label("Documents").set_input_files(document)
    # The deployed built-in teacher is the teacher unless the person chooses another.
    expect(page.get_by_label("One of this project's endpoints")).to_be_checked()
    expect(page.get_by_role("combobox", name="Endpoint:", exact=True)).to_have_value(str(teacher.pk))
    page.screenshot(path=artifacts_dir / "synthetic-1-form.png", full_page=True)
    page.get_by_test_id("propose-topics").click()

    topics = page.get_by_label("Topics")
    expect(topics).to_have_value(
        re.compile("- 3 letters\n- 4 letters\n"), timeout=120_000
    )  # either tree it writes
    topics.fill("short words\n- 3 letters\n- 4 letters\nlonger words\n- 6 letters")  # a person drops one
    page.screenshot(path=artifacts_dir / "synthetic-2-topics.png", full_page=True)
    page.get_by_test_id("generate-rows").click()

    expect(page.get_by_test_id("curation")).to_be_visible(timeout=120_000)
    expect(page.get_by_test_id("rows-made")).to_have_text("8")
    rows = page.get_by_test_id("generated-row")
    expect(rows).to_have_count(8)
    expect(rows.first).to_contain_text("reverse: ")  # the teacher's own rows
    for i in (0, 1, 2, 3, 4):
        rows.nth(i).get_by_test_id("select-row").check()
    page.get_by_test_id("accept-selected").click()
    expect(page.locator("[data-testid=generated-row][data-verdict=accepted]")).to_have_count(5)
    rows.nth(5).get_by_test_id("select-row").check()
    rows.nth(6).get_by_test_id("select-row").check()
    page.get_by_test_id("reject-selected").click()
    expect(page.locator("[data-testid=generated-row][data-verdict=rejected]")).to_have_count(2)
    edited = rows.nth(0)
    edited.get_by_test_id("field-completion").fill("edited by a person")
    edited.get_by_test_id("save-row").click()
    expect(rows.nth(0).get_by_test_id("row-saved")).to_be_visible()
    rows.nth(1).locator("summary").click()
    expect(rows.nth(1)).to_contain_text("guide.md")
    page.screenshot(path=artifacts_dir / "synthetic-3-curation.png", full_page=True)
    page.get_by_label("Dataset name").fill("reversals")
    page.get_by_test_id("save-dataset").click()

    expect(page.get_by_test_id("datasets")).to_contain_text("reversals.jsonl")
    dataset = Dataset.objects.get(project=project)
    assert dataset.rows == 5 and dataset.checks["sft"]["ok"]
    assert "edited by a person" in dataset.file.read_text()
    page.screenshot(path=artifacts_dir / "synthetic-4-datasets.png", full_page=True)

    page.goto(f"/projects/{project.pk}/customize/")  # the wizard, as "Customize a model" opens it
    page.get_by_label(re.compile("Atelier tiny \\(partly trained\\)")).check()
    page.get_by_role("button", name="Next: data").click()
    page.get_by_label("…or choose a dataset").select_option(f"dataset:{dataset.pk}")
    page.get_by_role("button", name="Check the data").click()
    expect(page.get_by_test_id("data-report")).to_contain_text("5 rows")
    page.screenshot(path=artifacts_dir / "synthetic-5-wizard-data.png", full_page=True)
    page.get_by_role("button", name="Next: technique").click()
    page.get_by_label("Max steps").fill("10")
    page.get_by_role("button", name="Next: review").click()
    page.get_by_test_id("launch").click()
    live = page.get_by_test_id("job-live")
    expect(live).to_have_attribute("data-status", re.compile("succeeded|failed|cancelled"), timeout=240_000)
    expect(live).to_have_attribute("data-status", "succeeded")
    job = Job.objects.filter(project=project, kind=Kind.TRAINING).get()
    assert job.status == "succeeded" and "reversals.jsonl" in job.labels["dataset"]
    trained_on = Path(job.spec["dataset"]).read_text()  # the wizard's copy of the chosen dataset
    assert "edited by a person" in trained_on and len(trained_on.splitlines()) == 5
    page.screenshot(path=artifacts_dir / "synthetic-5-trained.png", full_page=True)
