"""Project secrets in Chromium: saved on the Settings page and listed without their value, then chosen
by name as a generation's teacher key and an evaluation's judge key."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.projects.services import project_create
from tests.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
KEY = "sk-live-5c2e9a01d7b34f68"


def test_a_secret_is_saved_once_listed_without_its_value_and_chosen_by_name(page, alice, artifacts_dir):
    project = project_create(user=alice, name="Support bot")
    login(page, "alice")
    page.goto(f"/projects/{project.pk}/")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Settings").click()
    secrets = page.locator("#secrets")
    secrets.get_by_label("Name").fill("openai")
    secrets.get_by_label("Key").fill(KEY)
    secrets.get_by_role("button", name="Save secret").click()
    expect(page.get_by_test_id("secret-row")).to_contain_text("openai")
    expect(page.get_by_text("Its key is not shown again")).to_be_visible()
    assert KEY not in page.content()
    page.screenshot(path=str(artifacts_dir / "secrets-settings.png"), full_page=True)

    page.goto(f"/projects/{project.pk}/datasets/generate/")
    page.get_by_label("An OpenAI-compatible URL").check()
    page.get_by_label("API key").select_option("secret:openai")
    expect(page.get_by_label("API key")).to_have_value("secret:openai")
    assert KEY not in page.content()
    page.locator("fieldset", has=page.get_by_label("API key")).screenshot(
        path=str(artifacts_dir / "secrets-teacher.png")
    )
