"""The web processes' ASGI app (apps/asgi.py): requests borrow long-lived threads, and more requests at
once than there are threads are still served."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from apps.asgi import PooledASGIHandler


def _run(coroutine: Any) -> Any:
    """asyncio.run in a thread of its own: the browser tests' Playwright keeps an event loop running in
    the main thread."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def _scope(path: str, method: str = "GET") -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
    }  # fmt: skip


async def _get(app: Any, path: str, method: str = "GET", body: bytes = b"") -> tuple[int, bytes]:
    scope = _scope(path, method)
    sent: list[dict[str, Any]] = []
    answered, asked = asyncio.Event(), [False]

    async def receive() -> dict[str, Any]:
        if not asked[0]:
            asked[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.mark.django_db(transaction=True)
def test_requests_reuse_the_handlers_threads_and_the_overflow_is_served_too():
    app = PooledASGIHandler(threads=2)
    before = {id(e) for e in app.idle}

    async def main() -> list[tuple[int, bytes]]:
        return await asyncio.gather(*(_get(app, "/accounts/login/") for _ in range(6)))

    answers = _run(main())
    assert [status for status, _ in answers] == [200] * 6
    assert all(b"Log in" in body for _, body in answers)
    # Every borrowed thread came back, and no more than the two were kept.
    assert {id(e) for e in app.idle} == before
    kept = [t for e in app.idle for t in e._threads]  # the executors' own threads
    assert 1 <= len(kept) <= 2 and all(t.is_alive() for t in kept)  # those that ran, alive for the next
    app.idle.clear()  # the overflow path alone: a thread of its own per request
    assert [status for status, _ in _run(main())] == [200] * 6


@pytest.mark.django_db(transaction=True)
def test_pages_take_the_synchronous_chain_and_the_gateway_keeps_djangos_asynchronous_path():
    app = PooledASGIHandler(threads=2)
    assert app.synchronous(_scope("/accounts/login/")) and app.synchronous(_scope("/no/such/page/"))
    assert not app.synchronous(_scope("/v1/chat/completions"))  # an async view: streaming, disconnects
    # A POST's body reaches the synchronous chain: a log-in form without its CSRF token is refused.
    status, body = _run(_get(app, "/accounts/login/", "POST", b"username=a&password=b"))
    assert status == 403 and b"CSRF" in body
    assert _run(_get(app, "/no/such/page/"))[0] == 404
    status, body = _run(_get(app, "/v1/chat/completions", "POST", b"{}"))
    assert status == 401 and b"error" in body  # the gateway's own JSON error, from its async view
