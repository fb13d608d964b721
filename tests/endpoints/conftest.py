"""Helpers for the serving tests: waiting on rows the engine supervisor writes, in another process."""

from __future__ import annotations

import time
from typing import Any

import openai


def wait_for(check: Any, timeout: float = 90.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or check}")


def status_of(endpoint_pk: int) -> str:
    from apps.endpoints.models import Endpoint

    return Endpoint.objects.values_list("status", flat=True).get(pk=endpoint_pk)


def wait_ready(endpoint_pk: int, timeout: float = 90.0) -> None:
    from apps.endpoints.models import Endpoint

    def ready() -> bool:
        endpoint = Endpoint.objects.get(pk=endpoint_pk)
        assert endpoint.status != "failed", endpoint.message
        return endpoint.status == "ready"

    wait_for(ready, timeout, f"endpoint {endpoint_pk} to be ready")


def client_for(url: str, key: str) -> openai.OpenAI:
    """The official client, validating every response strictly, never retrying (a retry would hide a
    first failure)."""
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, _strict_response_validation=True)
