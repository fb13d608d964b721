"""A person launches resilient SFT from the wizard in Chromium: two training workers each run a
replica, the job trains to a model (identical on both, goodput in MLflow), and the job page shows the
replicas, their timeline and goodput. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.jobs.models import Job, Replica, Status
from apps.projects.services import project_create
from tests.conftest import login, start_worker
from tests.harness import mlflow_get
from workers.training.events import read_events

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def second_trainer(celery_trainer, trainer_db_url) -> Iterator[None]:
    """A second worker on the CPU training queue, as `ATELIER_TRAIN_WORKERS=2 make run` starts it."""
    worker = start_worker("trainer2", "train-cpu", 1, trainer_db_url)
    yield
    worker.stop()


def test_a_person_launches_resilient_training_and_sees_its_replicas(
    page, alice, artifacts_dir, tiny_model, second_trainer, mlflow_service
):
    project = project_create(user=alice, name="Resilient")
    login(page, "alice")
    page.goto(f"/projects/{project.pk}/customize/model/")
    page.get_by_label(re.compile("Atelier tiny \\(base\\)")).check()
    page.get_by_role("button", name="Next: data").click()
    page.get_by_label("…or choose a dataset").select_option("demo:reverse/sft.jsonl")
    page.get_by_label("No evaluation", exact=True).check()
    page.get_by_role("button", name="Check the data").click()
    expect(page.get_by_test_id("data-report")).to_contain_text("4100 rows")
    page.get_by_role("button", name="Next: technique").click()

    expect(page.get_by_test_id("step-technique")).to_be_visible()
    page.get_by_label("Method").select_option("full")
    page.get_by_label("Max steps").fill("30")
    page.get_by_test_id("resilience").locator("summary").click()
    page.get_by_label("Resilient training on several workers").check()
    # A minimum above the maximum is explained beside the field, and nothing is lost.
    page.get_by_label("Min replicas").fill("3")
    page.get_by_label("Max replicas").fill("2")
    page.get_by_role("button", name="Next: review").click()
    expect(page.get_by_test_id("resilience")).to_contain_text("1 ≤ minimum ≤ maximum")
    expect(page.get_by_label("Max steps")).to_have_value("30")
    page.get_by_label("Min replicas").fill("2")
    page.screenshot(path=artifacts_dir / "resilient-1-technique.png", full_page=True)
    page.get_by_role("button", name="Next: review").click()

    expect(page.get_by_test_id("review-resilience")).to_contain_text("2 to 2 replicas")
    page.screenshot(path=artifacts_dir / "resilient-2-review.png", full_page=True)
    page.get_by_test_id("launch").click()

    live = page.get_by_test_id("job-live")
    expect(page.get_by_test_id("replica-table")).to_be_visible(timeout=60_000)
    expect(live).to_have_attribute("data-status", re.compile("succeeded|failed|cancelled"), timeout=240_000)
    expect(live).to_have_attribute("data-status", "succeeded")
    expect(page.get_by_test_id("replica-row")).to_have_count(2)
    expect(page.get_by_test_id("live-replicas")).to_contain_text("2 training")
    expect(page.get_by_test_id("goodput")).to_contain_text("%")
    expect(page.get_by_test_id("replica-timeline")).to_contain_text("Coordinator up")
    page.screenshot(path=artifacts_dir / "resilient-3-job.png", full_page=True)
    job = Job.objects.get(project=project, kind="training")
    assert job.status == Status.SUCCEEDED and job.step == 30 and job.resilience["min_replicas"] == 2
    assert job.attempts == 1 and Path(job.artifacts["model"], "model.safetensors").exists()
    replicas = list(Replica.objects.filter(job=job))
    assert {r.worker.split("@")[0] for r in replicas} == {"trainer", "trainer2"}
    assert all(r.ended_at is not None for r in replicas)
    events = read_events(job.files.events)
    # A minimum of two: both replicas trained together from the first step, and ended identical.
    assert {e["participants"] for e in events if e["event"] == "step"} == {2}
    ended = [e["params_sha256"] for e in events if e["event"] in ("finished", "replica_done")]
    assert len(ended) == 2 and len(set(ended)) == 1
    metrics = mlflow_get(mlflow_service, "runs/get", run_id=job.mlflow_run_id)["run"]["data"]["metrics"]
    assert {m["key"] for m in metrics} >= {"goodput", "loss", "participants"}
