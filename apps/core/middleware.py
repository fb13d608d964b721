"""Middleware of our own: JSON routes that answer in JSON even when they refuse, and the
Content-Security-Policy on every page."""

from __future__ import annotations

from collections.abc import Callable

from axes.middleware import AxesMiddleware as _AxesMiddleware
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/"
JSON_SUFFIX = ".json"  # the job page's chart data, read by its script
REFUSALS = {
    403: "You do not have permission to do this.",
    404: "Not found, or it belongs to a project you are not a member of.",
    405: "This method is not allowed here.",
}


class JsonApiMiddleware:
    """/api/... (and the .json routes the pages' scripts read) is read by programs: an anonymous request gets 401 in JSON (login_required would send
    an HTML redirect to the login page), and a refusal rendered as an HTML page (another project's
    object is still a 404) is answered in JSON with the same status."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not (request.path.startswith(API_PREFIX) or request.path.endswith(JSON_SUFFIX)):
            return self.get_response(request)
        if not request.user.is_authenticated:
            return JsonResponse(
                {"error": "Log in first: this route needs a signed-in session."},
                status=401, headers={"WWW-Authenticate": 'Session realm="atelier"'},
            )  # fmt: skip
        response = self.get_response(request)
        if response.status_code in REFUSALS and "json" not in response.get("Content-Type", ""):
            return JsonResponse({"error": REFUSALS[response.status_code]}, status=response.status_code)
        return response


class ContentSecurityPolicyMiddleware:
    """Sends settings.CONTENT_SECURITY_POLICY on every response that has none of its own: scripts only
    from our own static files, no inline script or event handler. A response that already carries a
    policy (a proxied MLflow page, say) keeps its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = "; ".join(f"{k} {' '.join(v)}" for k, v in settings.CONTENT_SECURITY_POLICY.items())

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response


class AxesMiddleware(_AxesMiddleware):
    """django-axes's middleware (a locked-out login becomes the lockout page), run synchronously as every
    other middleware here is. Async-capable and last, it made Django leave each page's thread for the
    event loop at that point of the chain and start another thread for the view: two thread switches
    a page, which under 20 concurrent requests cost more than the page itself (bench/web.py). The
    gateway's async views are run from the chain's thread either way."""

    async_capable = False
