"""The ASGI app the web processes serve: Django's, with its request threads kept between requests.

Django's ASGIHandler runs each request's synchronous code (the middleware, the views, the ORM) in a
thread made for that request and its database connection, opened for it and closed after it: on SQLite
that is the schema read again and the connection set up (about 1 ms, a third of a loaded process's time
on the jobs list, bench/web.py), then a second thread to join the first. Here a request borrows one of a
few long-lived threads instead (asgiref's ThreadSensitiveContext with an executor the caller owns), whose
connections stay open (settings: CONN_MAX_AGE in the web processes). When all are busy, as with many
streaming answers from the gateway at once, a request gets a thread of its own as Django would give it,
and closes its connections when it ends.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")
django.setup(set_prefix=False)

from django.core.handlers.asgi import ASGIHandler  # noqa: E402 - needs the settings
from django.db import connections  # noqa: E402

# A request holds its thread from its first byte to its last: 16 lets the 20 people of bench/web.py
# share two processes' threads without waiting, and matches the PostgreSQL pool (ATELIER_DB_POOL_SIZE).
REQUEST_THREADS = 16


class PooledASGIHandler(ASGIHandler):
    def __init__(self, threads: int = REQUEST_THREADS) -> None:
        super().__init__()
        self.idle = [ThreadPoolExecutor(max_workers=1, thread_name_prefix="request") for _ in range(threads)]

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
