"""The OpenAI-compatible gateway under /v1/: API keys, rate limits, routing to engines, usage.

Async views, served by Django under ASGI (uvicorn): a request holds no thread while its engine generates.
The key's project decides which endpoints exist for it (another project's endpoint is "not found", as a
missing one is); `model` names the endpoint; the request goes to its engine's private port with `model`
rewritten to the engine's name for it (the base, or the endpoint's adapter), and the answer comes back
with the endpoint's name. An engine stopped for idleness is woken and the request waits while it loads;
an engine that died mid-way is waited for once (the supervisor restarts it). Errors keep OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from apps.endpoints.models import LIVE, ApiKey, Endpoint, EndpointStatus, Engine, EngineStatus
from apps.endpoints.services import endpoint_record_usage, endpoint_wake, key_digest
from apps.projects.models import EDITORS, Membership
from workers.serving import protocol
from workers.serving.protocol import ApiError

log = logging.getLogger("atelier.gateway")
TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=30.0, pool=5.0)


def error_response(exc: ApiError, headers: dict[str, str] | None = None) -> JsonResponse:
    return JsonResponse(exc.body(), status=exc.status, headers=headers)


async def authenticate(request: HttpRequest) -> ApiKey:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "You didn't provide an API key. Send it in the Authorization header (Bearer KEY); "
            "keys are made on the project's Endpoints page.",
            code="invalid_api_key",
        )
    token = token.strip()
    key = await ApiKey.objects.filter(digest=key_digest(token), revoked_at=None).afirst()
    if key is None:
        shown = f"{token[:6]}…{token[-4:]}" if len(token) > 12 else "****"
        raise ApiError(
            401,
            f"Incorrect API key provided: {shown}. Keys are made (and revoked) on the project's Endpoints page.",
            code="invalid_api_key",
        )
    # A key generates as the person who made it: once they are a viewer of the project (or gone from
    # it), their keys stop working, as the playground stops them.
    if not await Membership.objects.filter(
        project_id=key.project_id, user_id=key.created_by_id, role__in=EDITORS
    ).aexists():
        raise ApiError(
            403,
            "The person who made this API key can no longer generate in its project (they are a viewer "
            "or no longer a member). A member of the project can make a new key on its Endpoints page.",
            type="permission_error", code="permission_denied",
        )  # fmt: skip
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > timedelta(seconds=60):
        await ApiKey.objects.filter(pk=key.pk).aupdate(last_used_at=now)
    return key


@functools.cache
def _redis() -> Any:
    from apps.core.selectors import redis_client

    return redis_client()  # one connection pool per process


def _count(key: ApiKey) -> tuple[int, int]:
    """This minute's requests for the key, counted in Redis (shared by every web process)."""
    minute = int(time.time() // 60)
    name = f"atelier:rate:{key.pk}:{minute}"
    pipe = _redis().pipeline()
    pipe.incr(name)
    pipe.expire(name, 120)
    count = int(pipe.execute()[0])
    return count, 60 - int(time.time() % 60)


async def rate_limit(key: ApiKey) -> None:
    limit = key.rate_limit or settings.GATEWAY_RATE_LIMIT
    try:
        count, reset = await sync_to_async(_count)(key)
    except Exception:
        log.warning("rate limit not checked: Redis is unreachable", exc_info=True)
        return
    if count > limit:
        raise ApiError(
            429,
            f"Rate limit reached for this API key: {limit} requests a minute. Try again in {reset} s.",
            type="requests",
            code="rate_limit_exceeded",
        )


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def _client() -> httpx.AsyncClient:
    """One client per event loop (uvicorn runs one): connections to the engines are kept alive, and the
    client's setup (an SSL context, even for http://) is paid once, not per request."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = httpx.AsyncClient(
            timeout=TIMEOUT, limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
        )
    return client


def _serving(endpoint: Endpoint, not_pid: int | None = None) -> bool:
    engine = endpoint.engine
    return (
        endpoint.active
        and endpoint.status == EndpointStatus.READY
        and engine is not None
        and engine.status == EngineStatus.READY
        and engine.pid != not_pid
    )


async def ready_engine(endpoint: Endpoint, not_pid: int | None = None) -> Engine:
    """The endpoint's engine once it serves the endpoint, waking it if it is at zero; ApiError 503 when
    it failed or did not come up in time. `not_pid`: an engine process that just refused a connection."""
    if _serving(endpoint, not_pid):  # the common case: the row read with the request says it is up
        assert endpoint.engine is not None
        return endpoint.engine
    deadline = time.monotonic() + settings.ENGINE_WAKE_TIMEOUT_SECONDS
    woke = False
    while True:
        current = await Endpoint.objects.select_related("engine").filter(pk=endpoint.pk).afirst()
        if current is None or not current.active:
            raise protocol.model_not_found(endpoint.name)
        engine = current.engine
        if engine is not None:
            if (
                engine.status == EngineStatus.READY
                and current.status == EndpointStatus.READY
                and engine.pid != not_pid
            ):
                return engine
            if current.status == EndpointStatus.FAILED or engine.status == EngineStatus.FAILED:
                raise ApiError(
                    503,
                    f"The endpoint {endpoint.name} cannot serve: {current.message or engine.message}",
                    type="server_error",
                    code="engine_failed",
                )
            if engine.status == EngineStatus.IDLE and not woke:
                await sync_to_async(endpoint_wake)(endpoint=current)
                woke = True
        if time.monotonic() > deadline:
            raise ApiError(
                503,
                f"The endpoint {endpoint.name} is still starting ({current.get_status_display().lower()}); try again in a moment.",
                type="server_error",
                code="engine_starting",
            )
        await asyncio.sleep(0.2)


async def _usage(endpoint: Endpoint, usage: dict[str, Any] | None, error: bool = False) -> None:
    usage = usage or {}
    await sync_to_async(endpoint_record_usage)(
        endpoint_id=endpoint.pk,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        error=error,
    )


async def forward(endpoint: Endpoint, route: str, body: dict[str, Any]) -> HttpResponseBase:
    """Send a checked request to the endpoint's engine; the answer, in the endpoint's name."""
    upstream = {**body, "model": endpoint.served_name}
    stream = bool(body.get("stream"))
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if stream:  # always ask for usage, to count tokens; dropped again unless the client asked for it
        upstream["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    engine = await ready_engine(endpoint)
    client = _client()
    for attempt in (1, 2):
        try:
            request = client.build_request("POST", f"{engine.url}/v1/{route}", json=upstream)
            response = await client.send(request, stream=stream)
        except httpx.TransportError:
            if attempt == 2:
                await _usage(endpoint, None, error=True)
                raise ApiError(
                    503, f"The engine of {endpoint.name} is not answering.", type="server_error"
                ) from None
            log.warning(
                "engine %s of %s refused a request; waiting for its restart", engine.pk, endpoint.name
            )
            engine = await ready_engine(endpoint, not_pid=engine.pid)
            continue
        break
    if response.status_code != 200:
        content = await response.aread()
        await response.aclose()
        await _usage(endpoint, None, error=True)
        try:
            data = json.loads(content)
        except ValueError:
            data = ApiError(
                response.status_code, content.decode(errors="replace")[:500], type="server_error"
            ).body()
        return JsonResponse(data, status=response.status_code)
    if not stream:
        data = json.loads(await response.aread())
        await response.aclose()
        data["model"] = endpoint.name
        await _usage(endpoint, data.get("usage"))
        return JsonResponse(data)
    return StreamingHttpResponse(
        _relay(endpoint, response, wants_usage),
        content_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _relay(endpoint: Endpoint, response: httpx.Response, wants_usage: bool) -> AsyncIterator[bytes]:
    """The engine's server-sent events with the endpoint's name in them; counts the usage at the end."""
    usage: dict[str, Any] | None = None
    try:
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            payload = line[6:]
            if payload == "[DONE]":
                yield protocol.sse("[DONE]")
                continue
            chunk = json.loads(payload)
            if "model" in chunk:
                chunk["model"] = endpoint.name
            if chunk.get("usage"):
                usage = chunk["usage"]
                if not wants_usage:
                    if not chunk.get("choices"):
                        continue
                    chunk.pop("usage")
            elif not wants_usage:
                chunk.pop("usage", None)
            yield protocol.sse(chunk)
    finally:
        await response.aclose()
        await _usage(endpoint, usage)


def check(body: dict[str, Any], route: str) -> None:
    """The gateway answers a bad parameter itself (ApiError), without waking an engine."""
    protocol.sampling(body)
    if route == "chat/completions":
        protocol.chat_messages(body)
    else:
        protocol.completion_prompts(body)


async def endpoint_for_key(key: ApiKey, name: str) -> Endpoint:
    endpoint = (
        await Endpoint.objects.select_related("engine")
        .filter(project_id=key.project_id, name=name, active=True)
        .afirst()
    )
    if endpoint is None:
        raise protocol.model_not_found(name)
    return endpoint


async def _serve(request: HttpRequest, route: str) -> HttpResponseBase:
    if request.method != "POST":
        return error_response(ApiError(405, f"Use POST for /v1/{route}."))
    try:
        key = await authenticate(request)
        await rate_limit(key)
        try:
            raw = request.body
        except RequestDataTooBig as exc:
            raise ApiError(
                413, f"The request is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024} KB."
            ) from exc
        body = protocol.json_body(raw)
        endpoint = await endpoint_for_key(key, body["model"])
        check(body, route)
        return await forward(endpoint, route, body)
    except ApiError as exc:
        headers = {"Retry-After": "60"} if exc.status == 429 else None
        return error_response(exc, headers)


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    return await _serve(request, "chat/completions")


@csrf_exempt
async def completions(request: HttpRequest) -> HttpResponseBase:
    return await _serve(request, "completions")


@csrf_exempt
async def models(request: HttpRequest) -> HttpResponse:
    try:
        key = await authenticate(request)
        await rate_limit(key)
    except ApiError as exc:
        return error_response(exc)
    data = [
        {"id": e.name, "object": "model", "created": int(e.created_at.timestamp()), "owned_by": "atelier"}
        async for e in Endpoint.objects.filter(
            project_id=key.project_id, active=True, status__in=LIVE
        ).order_by("name")
    ]
    return JsonResponse({"object": "list", "data": data})


@csrf_exempt
async def not_found(request: HttpRequest, rest: str) -> HttpResponse:
    return error_response(
        ApiError(
            404,
            f"Atelier's gateway has no /v1/{rest}; it serves /v1/models, /v1/chat/completions and /v1/completions.",
            code="unknown_url",
        )
    )
