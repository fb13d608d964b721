from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from apps.core.models import ServicePing


def ping_send(*, user: User | None) -> ServicePing:
    """Record a ping and, once the row is committed, ask a Celery worker to answer it."""
    from workers.tasks import ping

    ping_row = ServicePing.objects.create(requested_by=user)
    # on commit: a worker fast enough to run before the commit would not find the row.
    transaction.on_commit(lambda: ping.delay(ping_row.pk))
    return ping_row


def ping_complete(*, ping_id: int, worker: str) -> None:
    """Called by the worker. Idempotent: a redelivered task leaves the first answer in place."""
    ServicePing.objects.filter(pk=ping_id, completed_at__isnull=True).update(
        completed_at=timezone.now(), worker=worker[:200]
    )
