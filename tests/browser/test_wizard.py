"""A person clicks the whole wizard in Chromium with the tiny model and a demo dataset, launches SFT and
watches the job finish on the real training worker. Screenshots of every step go to test-artifacts/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.jobs.models import Job, Status
from apps.projects.services import project_create
from tests.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_person_customizes_the_tiny_model_from_the_wizard_and_watches_the_job_finish(
    page, alice, artifacts_dir, tiny_model, celery_trainer, mlflow_service
):
    project = project_create(user=alice, name="Reverser")
    login(page, "alice")
    page.get_by_role("link", name="Customize a model").click()

    expect(page.get_by_test_id("step-model")).to_be_visible()
    expect(page.get_by_test_id("catalog")).to_contain_text("Qwen/Qwen2.5-0.5B-Instruct")
    page.get_by_label(re.compile("Atelier tiny \\(partly trained\\)")).check()
    page.screenshot(path=artifacts_dir / "wizard-1-model.png", full_page=True)
    page.get_by_role("button", name="Next: data").click()

    expect(page.get_by_test_id("step-data")).to_be_visible()
    page.get_by_label("…or choose a dataset").select_option("demo:reverse/sft.jsonl")
    page.get_by_label("A separate eval file", exact=True).check()
    page.get_by_label("Eval file", exact=True).select_option("demo:reverse/eval.jsonl")
    page.get_by_role("button", name="Check the data").click()
    expect(page.get_by_test_id("data-report")).to_contain_text("4100 rows")
    expect(page.get_by_test_id("preview").first).to_contain_text("<|im_start|>assistant")
    page.screenshot(path=artifacts_dir / "wizard-2-data.png", full_page=True)
    page.get_by_role("button", name="Next: technique").click()

    expect(page.get_by_test_id("step-technique")).to_be_visible()
    page.get_by_label("Max steps").fill("40")
    page.get_by_test_id("advanced").locator("summary").click()
    page.get_by_label("Batch size").fill("16")
    page.screenshot(path=artifacts_dir / "wizard-3-technique.png", full_page=True)
    page.get_by_role("button", name="Next: review").click()

    expect(page.get_by_test_id("step-review")).to_contain_text("40 steps")
    expect(page.get_by_test_id("estimate-memory")).to_contain_text("GB")
    page.screenshot(path=artifacts_dir / "wizard-4-review.png", full_page=True)
    page.get_by_test_id("launch").click()

    live = page.get_by_test_id("job-live")
    expect(live).to_be_visible()
    expect(live).to_have_attribute("data-status", re.compile("succeeded|failed|cancelled"), timeout=240_000)
    expect(live).to_have_attribute("data-status", "succeeded")
    expect(page.get_by_test_id("heldout-label")).to_contain_text("Held-out exact match")
    expect(page.get_by_test_id("heldout-before-after")).to_contain_text("→ after")
    expect(page.get_by_test_id("job-progress")).to_have_attribute("value", "1.0")
    expect(page.locator("#chart canvas")).to_have_count(1)
    page.screenshot(path=artifacts_dir / "job-finished.png", full_page=True)
    job = Job.objects.get(project=project, kind="training")
    assert job.status == Status.SUCCEEDED and 0 < job.step <= 40  # early stopping may end it sooner

    # The automatic evaluation follows on the same worker; the job page keeps one before → after: the
    # trainer's when it is the report's function on the report's rows, else the report's.
    pairs = page.locator('[data-testid="before-after"], [data-testid="heldout-before-after"]')
    expect(page.get_by_test_id("job-evaluation")).not_to_contain_text("Evaluating", timeout=180_000)
    expect(pairs).to_have_count(1)
    expect(pairs).to_contain_text("→")
    page.screenshot(path=artifacts_dir / "job-evaluated.png", full_page=True)
    page.get_by_test_id("job-evaluation").get_by_test_id("open-report").click()
    expect(page.get_by_test_id("headline")).to_contain_text("Exact match")
    expect(page.get_by_test_id("samples")).to_be_visible()
    page.screenshot(path=artifacts_dir / "wizard-evaluation-report.png", full_page=True)

    page.goto(f"/projects/{project.pk}/jobs/")
    expect(page.get_by_test_id("jobs")).to_contain_text("succeeded")
    page.screenshot(path=artifacts_dir / "jobs-list.png", full_page=True)


def test_an_upload_shows_its_progress_and_a_broken_line_on_the_data_step_keeping_the_good_rows(
    page, alice, artifacts_dir, tiny_model, settings, tmp_path
):
    settings.DATA_DIR = tiny_model.parent.parent
    project = project_create(user=alice, name="Uploads")
    login(page, "alice")
    page.goto(f"/projects/{project.pk}/customize/model/")
    page.get_by_role("button", name="Next: data").click()

    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        '{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n{"prompt": oops}\n'
    )
    page.get_by_label("Upload JSONL, JSON, CSV, TSV or Parquet").set_input_files(broken)
    page.get_by_role("button", name="Check the data").click()
    # The good rows are kept; the broken line is listed by its number
    expect(page.get_by_test_id("unreadable")).to_contain_text(
        "is not valid JSON: Expecting value at column 12"
    )
    expect(page.get_by_test_id("data-report")).to_contain_text("2 rows")
    page.screenshot(path=artifacts_dir / "wizard-2-data-broken-file.png", full_page=True)

    nothing = tmp_path / "nothing.jsonl"
    nothing.write_text("{oops}\n")
    page.get_by_label("Upload JSONL, JSON, CSV, TSV or Parquet").set_input_files(nothing)
    page.get_by_role("button", name="Check the data").click()
    expect(page.locator("#id_file_error")).to_contain_text("No line of nothing.jsonl could be read as a row")

    good = tmp_path / "qa.jsonl"
    good.write_text("".join(f'{{"prompt": "q{i}", "completion": "a{i}"}}\n' for i in range(50)))
    page.get_by_label("Upload JSONL, JSON, CSV, TSV or Parquet").set_input_files(good)
    page.get_by_role("button", name="Check the data").click()
    expect(page.get_by_test_id("data-report")).to_contain_text("50 rows")
    expect(page.get_by_test_id("data-report")).to_contain_text("qa.jsonl")


def test_a_person_choosing_a_folder_on_the_model_step_reaches_only_the_offered_folders(
    page, alice, artifacts_dir, tiny_model
):
    import shutil
    import uuid
    from pathlib import Path

    from django.conf import settings

    offered = Path(settings.MODEL_DIRS[0]) / uuid.uuid4().hex[:8]
    shutil.copytree(tiny_model / "partial", offered / "tiny-copy")
    try:
        project = project_create(user=alice, name="Folders")
        login(page, "alice")
        page.goto(f"/projects/{project.pk}/customize/model/")
        expect(page.get_by_test_id("step-model")).to_contain_text(str(settings.MODEL_DIRS[0]))
        page.get_by_label("A folder on this server").check()
        data_model = Path(settings.DATA_DIR) / "models" / "atelier-tiny" / "partial"
        page.get_by_label("Local folder").fill(str(data_model))  # a real model, but in the data folder
        page.get_by_role("button", name="Next: data").click()
        expect(page.get_by_test_id("step-model")).to_contain_text(
            f"No model folder at {data_model} among the folders this server offers."
        )
        page.screenshot(path=artifacts_dir / "wizard-model-folder-refused.png", full_page=True)
        page.get_by_label("Local folder").fill(str(offered / "tiny-copy"))
        page.get_by_role("button", name="Next: data").click()
        expect(page.get_by_test_id("step-data")).to_be_visible()
        page.screenshot(path=artifacts_dir / "wizard-model-folder-accepted.png", full_page=True)
    finally:
        shutil.rmtree(offered, ignore_errors=True)
