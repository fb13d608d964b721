"""A person in a real Chromium: logging in, projects, the switcher, the health page. Screenshots go to
test-artifacts/ for people to look at."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.projects.services import project_create
from tests.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_person_logs_in_creates_a_project_switches_to_it_and_sees_its_dashboard(page, alice, artifacts_dir):
    project_create(user=alice, name="Support bot")
    login(page, "alice")
    expect(page.get_by_role("heading", level=1)).to_have_text("Support bot")

    switcher = page.get_by_test_id("project-switcher")
    switcher.locator("summary").click()
    switcher.get_by_role("link", name="All projects · New project").click()
    page.get_by_label("Name").fill("Legal summaries")
    page.get_by_label("Description").fill("Summaries of contracts for the legal team.")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Legal summaries")
    expect(page.get_by_text("Project “Legal summaries” created.")).to_be_visible()

    switcher.locator("summary").click()
    switcher.get_by_role("link", name="Support bot").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Support bot")
    switcher.locator("summary").click()
    switcher.get_by_role("link", name="Legal summaries").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Legal summaries")
    expect(switcher.locator("summary")).to_have_text("Legal summaries")
    expect(page.get_by_test_id("recent-jobs")).to_contain_text("No jobs yet")
    page.screenshot(path=artifacts_dir / "dashboard.png", full_page=True)

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Datasets").click()
    expect(page.get_by_test_id("datasets")).to_contain_text("No datasets yet")
    page.screenshot(path=artifacts_dir / "datasets-empty.png")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Evaluations").click()
    expect(page.get_by_test_id("evaluations")).to_contain_text("No evaluations yet")
    expect(page.get_by_test_id("new-evaluation")).to_contain_text("customize a model")
    page.screenshot(path=artifacts_dir / "evaluations-empty.png", full_page=True)


def test_form_errors_appear_beside_the_field_without_losing_what_was_typed(page, alice, artifacts_dir):
    project_create(user=alice, name="Support bot")
    login(page, "alice")
    page.goto("/projects/")
    page.get_by_label("Name").fill("support BOT")
    page.get_by_label("Description").fill("typed text that must survive")
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("#id_name_error")).to_have_text("You already have a project named “support BOT”.")
    expect(page.get_by_label("Description")).to_have_value("typed text that must survive")
    page.screenshot(path=artifacts_dir / "project-form-errors.png", full_page=True)
    # The browser stops typing at 100 characters; the server's own check is in tests/projects.
    expect(page.get_by_label("Name")).to_have_attribute("maxlength", "100")


def test_a_wrong_password_is_shown_on_the_login_page(page, alice, artifacts_dir):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not it")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")
    page.screenshot(path=artifacts_dir / "login-wrong-password.png")


def test_another_users_project_is_a_404_in_the_browser(page, alice, bob):
    project = project_create(user=alice, name="Secret plans")
    login(page, "bob")
    response = page.goto(f"/projects/{project.pk}/")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.get_by_text("Secret plans")).to_have_count(0)


@pytest.mark.services
def test_the_health_page_shows_a_ping_answered_by_a_worker(page, alice, celery_worker, artifacts_dir):
    login(page, "alice")
    page.goto("/health/")
    page.get_by_role("button", name="Send a ping").click()
    expect(page.get_by_test_id("ping")).to_contain_text(
        re.compile(r"answered by test@\S+ in \d+ ms"), timeout=20_000
    )
    expect(page.get_by_test_id("service-states")).to_contain_text("Celery workers")
    page.screenshot(path=artifacts_dir / "health.png", full_page=True)
