from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from apps.core.http import AuthedRequest
from apps.core.models import ServicePing
from apps.core.selectors import service_states
from apps.core.services import ping_send


@login_required
@require_GET
def health(request: AuthedRequest) -> HttpResponse:
    latest = ServicePing.objects.filter(requested_by=request.user).first()
    return render(request, "core/health.html", {"states": service_states(), "ping": latest})


@login_required
@require_GET
def health_states(request: AuthedRequest) -> HttpResponse:
    return render(request, "core/health.html#states", {"states": service_states()})


@login_required
@require_POST
def health_ping_send(request: AuthedRequest) -> HttpResponse:
    ping = ping_send(user=request.user)
    return render(request, "core/health.html#ping", {"ping": ping})


@login_required
@require_GET
def health_ping_detail(request: AuthedRequest, ping_id: int) -> HttpResponse:
    ping = get_object_or_404(ServicePing, pk=ping_id, requested_by=request.user)
    return render(request, "core/health.html#ping", {"ping": ping})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and monitoring: each service up or down, no details, no login."""
    states = service_states()
    required = [s for s in states if s.ok is not None and s.essential]
    body = {"ok": all(s.ok for s in required), "services": {s.name: s.label for s in states}}
    return JsonResponse(body, status=200 if body["ok"] else 503)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A refused action says why on the page. htmx does not swap a 403 (base.html's response handling),
    so a refused htmx request, once ignored without a word, reloads the page with the message on it."""
    message = str(exception or "") or "You do not have permission to do this."
    if getattr(request, "htmx", False):
        messages.error(request, message)
        return HttpResponse(message, status=403, headers={"HX-Refresh": "true"})
    referer = request.headers.get("Referer", "")
    safe = url_has_allowed_host_and_scheme(referer, {request.get_host()}, request.is_secure())
    back = referer if referer and safe and referer != request.build_absolute_uri() else "/"
    return render(request, "403.html", {"exception": message, "back": back}, status=403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return render(request, "core/csrf_failure.html", {"reason": reason}, status=403)
