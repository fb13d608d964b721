"""The teacher check of the generation form, run on a worker (never in the web process, which should
not be able to reach what the workers reach) and answered so that it tells nothing about ports: a
closed port, a service that is not HTTP, an HTTP server that is not OpenAI's and a timeout all get the
same message. The form waits for the answer on a Redis list named by a one-time token."""

from __future__ import annotations

import http.client
import json
import secrets
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings

from apps.secrets.outbound import policy
from apps.secrets.services import KeyUnavailable, key_resolve
from workers.training import outbound

ANSWER_KEY = "atelier:teacher-probe:{}"
TIMEOUT_SECONDS = 5.0


def _redis(timeout: float) -> Any:
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=2)


def not_openai(base_url: str) -> str:
    return (
        f"The teacher at {base_url} did not answer like an OpenAI-compatible API (a JSON list of models "
        "at its /models). Check the URL, or try again when the server is up."
    )


def teacher_problem_on_worker(*, project_id: int, base_url: str, key_ref: str) -> str | None:
    """The web side: ask a worker why the teacher cannot be used (None: it can); waits for the answer."""
    from workers.tasks import teacher_probe

    token = secrets.token_urlsafe(16)
    wait = settings.PROBE_TIMEOUT_SECONDS
    try:
        teacher_probe.delay(token, project_id, base_url, key_ref)
        answer = _redis(wait + 5).blpop([ANSWER_KEY.format(token)], timeout=wait)
    except Exception:  # noqa: BLE001 - a broker that is down is a message on the form, not a 500
        answer = None
    if answer is None:
        return (
            "No worker answered to check the teacher; make sure the workers are running (Service health) "
            "and try again."
        )
    return json.loads(answer[1]).get("problem")


def teacher_probe_run(token: str, project_id: int, base_url: str, key_ref: str) -> None:
    """The worker side: check the teacher and leave the answer for the waiting form (a minute)."""
    try:
        key = key_resolve(project_id=project_id, ref=key_ref)
    except KeyUnavailable as exc:
        problem: str | None = str(exc)
    else:
        problem = teacher_problem(base_url, key)
    client = _redis(5)
    name = ANSWER_KEY.format(token)
    client.rpush(name, json.dumps({"problem": problem}))
    client.expire(name, 60)


def teacher_problem(base_url: str, key: str | None = None, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """Why the teacher's URL cannot be used, or None: a person learns it on the form, not from a failed
    job. Its address is checked by the outbound policy when connecting."""
    try:
        outbound.check_url(base_url, base=True)
    except outbound.OutboundRefused as exc:
        return str(exc)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(f"{base_url.rstrip('/')}/models", headers=headers)  # noqa: S310
    try:
        with outbound.urlopen(request, timeout=timeout, policy=policy()) as response:
            body = json.loads(response.read(1_000_000) or b"null")
        if isinstance(body, dict) and isinstance(body.get("data"), list):
            return None
    except outbound.OutboundRefused as exc:
        return str(exc)  # the address, not the port: decided before any connection
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403) and _is_openai_error(exc):
            return f"The teacher at {base_url} refused the key ({exc.code}): choose the right secret."
    except (OSError, ValueError, http.client.HTTPException):
        pass
    return not_openai(base_url)


def _is_openai_error(exc: urllib.error.HTTPError) -> bool:
    try:
        body = json.loads(exc.read(100_000) or b"null")
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and "error" in body
