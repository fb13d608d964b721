"""The Content-Security-Policy header: on every page, scripts only from our own files; a response with a
policy of its own (a proxied MLflow page, say) keeps it. That no page breaks it is checked in Chromium
(tests/browser/test_policy.py and the `page` fixture)."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse

from apps.core.middleware import ContentSecurityPolicyMiddleware

pytestmark = pytest.mark.django_db


def test_every_page_gets_a_policy_without_inline_scripts(client, alice, alice_project):
    for url in (reverse("login"), "/no-such-page/"):
        policy = client.get(url)["Content-Security-Policy"]
        assert (
            "script-src 'self';" in policy
            and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        )
    client.force_login(alice)
    policy = client.get(reverse("project-dashboard", args=[alice_project.pk]))["Content-Security-Policy"]
    assert (
        "default-src 'self'" in policy
        and "object-src 'none'" in policy
        and "frame-ancestors 'none'" in policy
    )


def test_a_response_with_its_own_policy_keeps_it():
    own = "default-src 'self'; script-src 'self' 'unsafe-inline'"
    middleware = ContentSecurityPolicyMiddleware(
        lambda request: HttpResponse(headers={"Content-Security-Policy": own})
    )
    assert middleware(RequestFactory().get("/mlflow/"))["Content-Security-Policy"] == own
