"""The state of every service Atelier depends on, for the health page and /healthz."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection

if TYPE_CHECKING:
    import redis

BEAT_KEY = "atelier:beat:last"
ENGINES_KEY = "atelier:engines:last"  # the engine supervisor's heartbeat
BEAT_STALE_AFTER_S = 60


@dataclass(frozen=True)
class ServiceState:
    name: str
    ok: bool | None  # None: not part of this installation yet
    detail: str
    url: str = ""
    essential: bool = True  # False: shown, but /healthz stays 200 without it (a feature, not a service)

    @property
    def label(self) -> str:
        return {True: "up", False: "down", None: "not built yet"}[self.ok]


def _redact(url: str) -> str:
    """Hide a password in a service URL."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


def _database() -> ServiceState:
    vendor = connection.vendor
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return ServiceState("Database", True, f"{vendor}: {connection.settings_dict['NAME']}")
    except Exception as exc:  # noqa: BLE001 - any failure is the answer here
        return ServiceState("Database", False, f"{vendor}: {exc}")


def redis_client() -> redis.Redis:
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def _redis() -> tuple[ServiceState, bool]:
    url = _redact(settings.REDIS_URL)
    try:
        info = redis_client().info("server")
        return ServiceState("Redis", True, f"{url} (Redis {info.get('redis_version', '?')})"), True
    except Exception as exc:  # noqa: BLE001
        return ServiceState("Redis", False, f"{url}: {exc}"), False


def _workers(redis_up: bool) -> ServiceState:
    if not redis_up:
        return ServiceState("Celery workers", False, "Redis is down, so no worker can be reached.")
    from workers.celery import app

    try:
        replies = app.control.inspect(timeout=1.0).ping() or {}
    except Exception as exc:  # noqa: BLE001
        return ServiceState("Celery workers", False, str(exc))
    if not replies:
        return ServiceState("Celery workers", False, "No worker answered within 1 s.")
    return ServiceState("Celery workers", True, ", ".join(sorted(replies)))


def _heartbeat(name: str, key: str, redis_up: bool, missing: str) -> tuple[ServiceState | None, float]:
    """(a down state, or None and the heartbeat's age in seconds) of a process that writes `key`."""
    if not redis_up:
        return ServiceState(name, False, "Redis is down."), 0.0
    try:
        raw = redis_client().get(key)
    except Exception as exc:  # noqa: BLE001
        return ServiceState(name, False, str(exc)), 0.0
    if raw is None:
        return ServiceState(name, False, missing), 0.0
    return None, time.time() - float(raw)


def _beat(redis_up: bool) -> ServiceState:
    down, age = _heartbeat(
        "Celery beat", BEAT_KEY, redis_up, "No scheduled tick has run yet (beat and a worker are needed)."
    )
    return down or ServiceState(
        "Celery beat", age < BEAT_STALE_AFTER_S, f"last scheduled tick {age:.0f} s ago"
    )


# Users open MLflow through the app's proxy (apps/core/mlflow_proxy.py); the server answers only the app.
MLFLOW_UI = "/mlflow/"


def _mlflow() -> ServiceState:
    uri = settings.MLFLOW_TRACKING_URI
    if not uri.startswith(("http://", "https://")):
        return ServiceState("MLflow", True, f"{uri} (local store, no server)")
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=2) as response:  # noqa: S310
            ok = response.status == 200
        return ServiceState("MLflow", ok, _redact(uri), url=MLFLOW_UI)
    except (urllib.error.URLError, OSError) as exc:
        return ServiceState("MLflow", False, f"{_redact(uri)}: {exc}", url=MLFLOW_UI)


def _engines(redis_up: bool) -> ServiceState:
    from apps.endpoints.models import Engine, EngineStatus

    down, age = _heartbeat(
        "Inference engines",
        ENGINES_KEY,
        redis_up,
        "The engine supervisor is not running (`make run` starts it).",
    )
    if down:
        return down
    counts = {
        s: Engine.objects.filter(status=s).count()
        for s in (EngineStatus.READY, EngineStatus.IDLE, EngineStatus.FAILED)
    }
    detail = (
        f"supervisor seen {age:.0f} s ago; {counts[EngineStatus.READY]} engine(s) ready, "
        f"{counts[EngineStatus.IDLE]} at zero, {counts[EngineStatus.FAILED]} failed"
    )
    return ServiceState("Inference engines", age < BEAT_STALE_AFTER_S, detail)


def _grader_sandbox() -> ServiceState:
    from workers.training.graders.sandbox import sandbox_state

    state = sandbox_state()
    detail = state.detail if state.safe else f"Python graders are refused: {state.detail}"
    return ServiceState("Grader sandbox", state.safe, detail, essential=False)


def service_states() -> list[ServiceState]:
    redis_state, redis_up = _redis()
    return [
        _database(),
        redis_state,
        _workers(redis_up),
        _beat(redis_up),
        _mlflow(),
        _engines(redis_up),
        _grader_sandbox(),
    ]
