"""The Content-Security-Policy in a real Chromium: every page visited here (and in every other browser
test, through the `page` fixture) logs no violation; the policy is really enforced (an injected inline
script is refused); and the pages a viewer is refused on say why. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from apps.endpoints.services import endpoint_deploy
from apps.jobs.models import Job, Status
from apps.jobs.services import job_create
from apps.projects.models import Role
from apps.projects.services import membership_add, project_create
from tests.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_no_page_logs_a_content_security_policy_violation(
    page, alice, tiny_model, redis_service, artifacts_dir
):
    project = project_create(user=alice, name="Support bot")
    alice.is_staff = True
    alice.save()
    job = job_create(project=project, user=alice, name="chart",
                     spec={"technique": "sft", "model": "/m", "dataset": "/d.jsonl"})  # fmt: skip
    Job.objects.filter(pk=job.pk).update(status=Status.RUNNING, started_at=timezone.now(), step=2, max_steps=10,
                                         metrics=[{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])  # fmt: skip
    endpoint_deploy(project=project, user=alice, model=str(tiny_model / "base"), name="tiny")
    login(page, "alice")
    pid = project.pk
    for name, args in [
        ("project-dashboard", [pid]), ("project-members", [pid]), ("dataset-list", [pid]), ("job-list", [pid]),
        ("job-detail", [pid, job.pk]), ("evaluation-list", [pid]), ("endpoint-list", [pid]),
        ("model-catalog", [pid]), ("playground", [pid]), ("wizard-model", [pid]), ("generation-new", [pid]),
        ("health", []), ("invitation-list", []), ("project-list", []), ("password_change", []), ("admin:index", []),
    ]:  # fmt: skip
        response = page.goto(reverse(name, args=args))
        assert response is not None and response.ok, name
        assert "script-src 'self'" in (response.header_value("content-security-policy") or ""), name
    page.goto(reverse("playground", args=[pid]))
    # playground.js ran under the policy: it wrote the code snippets from the form's data attributes.
    expect(page.get_by_test_id("snippet-curl")).to_contain_text("/v1/chat/completions")
    page.goto(reverse("endpoint-list", args=[pid]))
    page.goto("/no-such-page/")  # the 404 page


def test_an_inline_script_is_refused_by_the_policy(browser, live_server, alice):
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text))
    page.goto("/accounts/login/")
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.append(s); }"
    )
    assert page.evaluate("() => window.ran") is None
    assert any("Content Security Policy" in text for text in seen)
    context.close()


def test_a_viewer_is_told_why_on_the_playground_and_a_refused_form(
    page, alice, bob, tiny_model, artifacts_dir
):
    project = project_create(user=alice, name="Support bot")
    membership_add(project=project, actor=alice, username="bob", role=Role.VIEWER)
    endpoint_deploy(project=project, user=alice, model=str(tiny_model / "base"), name="tiny")
    login(page, "bob")
    page.goto(reverse("playground", args=[project.pk]))
    expect(page.get_by_test_id("viewer-notice")).to_contain_text("you can see its endpoints but not generate")
    expect(page.get_by_test_id("send")).to_be_disabled()
    page.screenshot(path=artifacts_dir / "playground-viewer.png", full_page=True)
    # A form posted from a page opened before bob became a viewer: refused with the reason, not ignored.
    page.goto(reverse("dataset-list", args=[project.pk]))
    page.evaluate("""(url) => { const f = document.createElement('form'); f.method = 'post'; f.action = url;
        const t = document.createElement('input'); t.name = 'csrfmiddlewaretoken';
        t.value = document.cookie.match(/csrftoken=([^;]+)/)[1]; f.append(t); document.body.append(f); f.submit(); }""",
                  reverse("endpoint-list", args=[project.pk]))  # fmt: skip
    expect(page.get_by_role("alert")).to_contain_text("Viewers can look but not change or generate anything")
    page.screenshot(path=artifacts_dir / "refused-viewer.png", full_page=True)


def test_a_locked_out_login_says_so_and_until_when(page, alice, artifacts_dir):
    page.goto("/accounts/login/")
    for _ in range(10):
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        if page.get_by_test_id("locked-out").count():
            break
    expect(page.get_by_test_id("locked-out")).to_contain_text("for the next 15 minutes")
    page.screenshot(path=artifacts_dir / "locked-out.png", full_page=True)
