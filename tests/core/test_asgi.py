"""The web processes' ASGI app (apps/asgi.py): requests borrow long-lived threads, and more requests at
once than there are threads are still served."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from apps.asgi import PooledASGIHandler


async def _get(app: Any, path: str) -> tuple[int, bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []
    answered, asked = asyncio.Event(), [False]

    async def receive() -> dict[str, Any]:
        if not asked[0]:
            asked[0] = True
            return {"type": "http.request", "body": b"", "more_body": False}
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

    answers = asyncio.run(main())
    assert [status for status, _ in answers] == [200] * 6
    assert all(b"Log in" in body for _, body in answers)
    # Every borrowed thread came back, and no more than the two were kept.
    assert {id(e) for e in app.idle} == before
    request_threads = [t for t in threading.enumerate() if t.name.startswith("request")]
    assert 1 <= len(request_threads) <= 2  # those that ran a request, alive for the next one
    app.idle.clear()  # the overflow path alone: a thread of its own per request
    assert [status for status, _ in asyncio.run(main())] == [200] * 6
