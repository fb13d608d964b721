"""A person follows the job page's "open in MLflow" link in Chromium: MLflow's own UI, through the app's
/mlflow/ proxy (under uvicorn, as `make run` serves it), shows the job's run; another project's run is
not there. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.jobs.models import Job, Status
from apps.projects.services import project_create
from tests.conftest import login
from tests.core.test_mlflow_proxy import _logged_run

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_the_job_pages_mlflow_link_opens_the_run_in_mlflows_ui_behind_the_login(
    asgi_page, alice, bob, alice_project, mlflow_service, artifacts_dir, tmp_path
):
    page = asgi_page
    mine = _logged_run(mlflow_service, alice_project.pk, tmp_path / "a", "alice-only-words")
    theirs = _logged_run(
        mlflow_service, project_create(user=bob, name="Other").pk, tmp_path / "b", "bob-words"
    )
    job = Job.objects.create(
        project=alice_project, created_by=alice, name="Reverser", technique="sft", spec={}, status=Status.SUCCEEDED,
        mlflow_run_id=mine["run_id"],
    )  # fmt: skip
    console: list[str] = []
    login(page, "alice")
    page.goto(f"/projects/{alice_project.pk}/jobs/{job.pk}/")
    link = page.get_by_role("link", name="open in MLflow")
    expect(link).to_have_attribute("href", f"/mlflow/#/runs/{mine['run_id']}")
    with page.context.expect_page() as opened:
        link.click()
    mlflow = opened.value
    mlflow.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    slow = 120_000  # the UI's bundle is 4 MB, on a busy machine
    expect(mlflow.get_by_text("sft-alice-only-words").first).to_be_visible(timeout=slow)
    expect(mlflow).to_have_url(
        re.compile(rf"/mlflow/#/experiments/{mine['experiment_id']}/runs/{mine['run_id']}")
    )
    expect(mlflow.get_by_text("secret_words").first).to_be_attached(
        timeout=slow
    )  # its params, read through the proxy
    mlflow.get_by_role("button", name="Close").first.click()  # MLflow's assistant panel, in the way
    mlflow.screenshot(path=artifacts_dir / "mlflow-run.png", full_page=True)

    mlflow.goto("/mlflow/#/experiments")
    expect(mlflow.get_by_role("row").filter(has_text=f"project-{alice_project.pk}")).to_be_visible(
        timeout=slow
    )
    mlflow.screenshot(path=artifacts_dir / "mlflow-experiments.png", full_page=True)
    assert mlflow.get_by_role("row").filter(has_text=f"project-{theirs['project_id']}").count() == 0
    assert not [line for line in console if "Content Security Policy" in line], console
