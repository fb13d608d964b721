"""The health page against the real services: embedded Redis, a Celery worker and beat, MLflow."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from apps.core.models import ServicePing

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"not true after {timeout} s")


def test_a_ping_round_trips_through_redis_and_a_real_worker(client, alice, celery_worker):
    client.force_login(alice)
    response = client.post(reverse("health-ping"), headers={"HX-Request": "true"})
    assert "waiting for a worker" in response.content.decode()
    ping = ServicePing.objects.get()
    _wait_for(lambda: ServicePing.objects.filter(pk=ping.pk, completed_at__isnull=False).exists())
    fragment = client.get(reverse("health-ping-detail", args=[ping.pk])).content.decode()
    assert "answered by <code>test@" in fragment
    assert "done" in fragment


def test_every_service_is_up_on_the_health_page(
    client, alice, celery_beat, mlflow_service, engine_supervisor
):
    client.force_login(alice)

    def all_up() -> str | None:
        page = client.get(reverse("health")).content.decode()
        return page if page.count("badge-up") == 7 else None

    page = _wait_for(all_up, timeout=30)
    for name in (
        "Database",
        "Redis",
        "Celery workers",
        "Celery beat",
        "MLflow",
        "Inference engines",
        "Grader sandbox",
    ):
        assert f'<th scope="row">{name}</th>' in page
    assert "engine(s) ready" in page
    body = client.get(reverse("healthz")).json()
    assert body["ok"] is True
    assert body["services"]["MLflow"] == "up"


def test_a_service_that_is_down_is_named_and_healthz_answers_503(client, alice, settings, redis_service):
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"  # the discard port: nothing listens there
    client.force_login(alice)
    page = client.get(reverse("health")).content.decode()
    assert "http://127.0.0.1:9: &lt;urlopen error" in page
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["services"]["MLflow"] == "down"


def test_the_ping_of_another_user_is_not_shown(client, alice, bob):
    ping = ServicePing.objects.create(requested_by=alice)
    client.force_login(bob)
    assert client.get(reverse("health-ping-detail", args=[ping.pk])).status_code == 404


def test_the_health_page_shows_whether_the_grader_sandbox_is_safe_without_failing_healthz(
    client, alice, monkeypatch, redis_service
):
    from workers.training.graders.sandbox import SANDBOX_UID_ENV, sandbox_state

    client.force_login(alice)
    assert (
        "in their own namespaces: no capabilities, seccomp" in client.get(reverse("health")).content.decode()
    )
    monkeypatch.setenv(SANDBOX_UID_ENV, "0")
    sandbox_state.cache_clear()
    try:
        page = client.get(reverse("health")).content.decode()
        assert "Python graders are refused" in page and "must be the number of an unprivileged user" in page
        body = client.get(reverse("healthz")).json()
        assert body["services"]["Grader sandbox"] == "down"
        # Python graders are a feature: with only the sandbox down, /healthz still answers ok.
        assert body["ok"] is all(v != "down" for k, v in body["services"].items() if k != "Grader sandbox")
    finally:
        monkeypatch.delenv(SANDBOX_UID_ENV)
        sandbox_state.cache_clear()
