"""The outbound policy (workers.training.outbound) as the web app's forms use it: the administrator's
allow-list from settings, and a message for the field at fault."""

from __future__ import annotations

from django.conf import settings

from workers.training import outbound


def policy() -> outbound.Policy:
    return outbound.Policy.parse(settings.OUTBOUND_ALLOW, settings.GATEWAY_URL)


def url_problem(url: str) -> str | None:
    """Why a judge's or teacher's base URL cannot be used, or None. Resolves the host (no connection):
    the training process checks again each time it connects, so a name that changes its answer later
    still gets nothing."""
    try:
        outbound.check_url_addresses(url, policy())
    except outbound.OutboundRefused as exc:
        return str(exc)
    return None
