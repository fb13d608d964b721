"""Every Celery task: ids in, one call into a service. Safe to run twice."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from celery.signals import worker_ready

from workers.celery import app


@worker_ready.connect
def release_what_this_worker_held(sender: Any = None, **_kwargs: Any) -> None:
    """A worker that starts again (after a SIGKILL, the OOM killer, a crash) gives back at once the jobs
    its earlier life was running, so they resume now instead of after the lease."""
    from django.db import connections

    from workers.runner import jobs_release

    try:
        jobs_release(node=sender.hostname)
    finally:
        connections.close_all()  # the main process forks pool children later: they must not share it


@app.task(name="workers.tasks.ping")
def ping(ping_id: int) -> None:
    from apps.core.services import ping_complete

    ping_complete(ping_id=ping_id, worker=ping.request.hostname or socket.gethostname())


@app.task(name="workers.tasks.beat_heartbeat")
def beat_heartbeat() -> None:
    """Scheduled by beat: proves beat, Redis and a worker are all alive (health page)."""
    from apps.core.selectors import BEAT_KEY, redis_client

    redis_client().set(BEAT_KEY, time.time())


@app.task(name="workers.tasks.job_run_next")
def job_run_next(queue: str) -> None:
    """Run the next waiting job of `queue` (the row decides which; a message may find none)."""
    from workers.runner import job_run_next as run_next

    run_next(queue=queue, worker=f"{job_run_next.request.hostname}:{os.getpid()}")


@app.task(name="workers.tasks.jobs_reap")
def jobs_reap() -> None:
    from workers.runner import jobs_reap as reap

    reap()


@app.task(name="workers.tasks.endpoint_merge")
def endpoint_merge(endpoint_id: int) -> None:
    """Merge an endpoint's adapter into its base for download (a subprocess: torch stays out of here)."""
    from apps.endpoints.exports import merge

    merge(endpoint_id)


@app.task(name="workers.tasks.teacher_probe")
def teacher_probe(token: str, project_id: int, base_url: str, key_ref: str) -> None:
    """Check a teacher's URL for the generation form, here rather than in the web process."""
    from apps.synthetic.probe import teacher_probe_run

    teacher_probe_run(token, project_id, base_url, key_ref)
