"""The ASGI app the web processes serve: Django's, with its request threads kept between requests.

Django's ASGIHandler runs each request's synchronous code (the middleware, the views, the ORM) in a
thread made for that request and its database connection, opened for it and closed after it: on SQLite
that is the schema read again and the connection set up (about 1 ms, a third of a loaded process's time
on the jobs list, bench/web.py), then a second thread to join the first. Here a request borrows one of a
few long-lived threads instead (asgiref's ThreadSensitiveContext with an executor the caller owns), whose
connections stay open (settings: CONN_MAX_AGE in the web processes). When all are busy, as with many
streaming answers from the gateway at once, a request gets a thread of its own as Django would give it,
and closes its connections when it ends.

A request for a synchronous view (every page; the gateway's and the MLflow proxy's views are
asynchronous) goes through Django's synchronous middleware chain in that thread in one call, as under
WSGI: Django's own ASGI path adapts the synchronous chain to its asynchronous handler and back, four
thread switches a request that cost about 3 ms of CPU each time on these cores. Asynchronous views
keep Django's ASGI path, with its disconnect handling and streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")
django.setup(set_prefix=False)

from django.core import signals  # noqa: E402 - needs the settings
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.db import connections  # noqa: E402
from django.http import FileResponse, HttpRequest, HttpResponseBase  # noqa: E402
from django.urls import Resolver404, resolve, set_script_prefix  # noqa: E402

# A request holds its thread from its first byte to its last: 16 lets the 20 people of bench/web.py
# share two processes' threads without waiting, and matches the PostgreSQL pool (ATELIER_DB_POOL_SIZE).
REQUEST_THREADS = 16


class PooledASGIHandler(ASGIHandler):
    def __init__(self, threads: int = REQUEST_THREADS) -> None:
        super().__init__()
        self.idle = [ThreadPoolExecutor(max_workers=1, thread_name_prefix="request") for _ in range(threads)]
        # The same middleware, chained synchronously (Django's WSGI handler's chain), for sync views.
        self.sync = ASGIHandler.__new__(ASGIHandler)
        self.sync.load_middleware(is_async=False)

    def synchronous(self, scope: dict[str, Any]) -> bool:
        """Whether the request's view is synchronous (a path that resolves to nothing gets Django's 404
        page, synchronous too)."""
        path = scope["path"].removeprefix(get_script_prefix(scope).rstrip("/"))
        try:
            view = resolve(path).func
        except Resolver404:
            return True
        return not inspect.iscoroutinefunction(view) and not asyncio.iscoroutinefunction(view)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not self.synchronous(scope):
            await super().handle(scope, receive, send)
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return
        response = await sync_to_async(self.respond)(request, scope)
        with contextlib.suppress(asyncio.CancelledError):  # the client went away
            await self.send_response(response, send)
        await sync_to_async(response.close)()  # request_finished
        body_file.close()

    def respond(self, request: HttpRequest, scope: dict[str, Any]) -> HttpResponseBase:
        signals.request_started.send(sender=self.__class__, scope=scope)
        response = self.sync.get_response(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]  # as Django's handlers do
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        if not self.idle:
            async with ThreadSensitiveContext():
                try:
                    await self.handle(scope, receive, send)
                finally:  # its thread ends with it: so do its connections
                    await sync_to_async(connections.close_all)()
            return
        executor = self.idle.pop()  # the event loop's thread alone touches the list
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self.idle.append(executor)


application = PooledASGIHandler()
