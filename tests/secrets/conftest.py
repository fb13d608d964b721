"""A listener on 127.0.0.1 that records every connection and request it gets, answering like an
OpenAI-compatible server: what the SSRF tests aim the judge and the teacher at, to see whether anything
arrived and with which key."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Recorder:
    url: str = ""
    port: int = 0
    connections: int = 0
    hits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def received_anything(self) -> bool:
        return self.connections > 0 or bool(self.hits)


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            recorder.hits.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                  "body": self.rfile.read(length).decode(errors="replace")})  # fmt: skip

        def do_GET(self) -> None:
            self._record()
            self._answer({"object": "list", "data": [{"id": "judge", "object": "model"}]})

        def do_POST(self) -> None:
            self._record()
            self._answer({"choices": [{"message": {"role": "assistant", "content": "7"}}]})

    return Handler


class _Server(ThreadingHTTPServer):
    recorder: Recorder

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.recorder.connections += 1  # any TCP connection at all, HTTP or not
        return True


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    server = _Server(("127.0.0.1", 0), _handler(recorder))
    server.recorder = recorder
    recorder.port = server.server_address[1]
    recorder.url = f"http://127.0.0.1:{recorder.port}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recorder
    server.shutdown()
    server.server_close()


@pytest.fixture
def allow_list_off(settings, monkeypatch) -> None:
    """No loopback allowed: the forms (settings) and the training layer in this process (environment)."""
    settings.OUTBOUND_ALLOW = ""
    settings.GATEWAY_URL = "http://127.0.0.1:9/v1"  # the gateway stays allowed; nothing listens there
    monkeypatch.delenv("ATELIER_OUTBOUND_ALLOW", raising=False)
    monkeypatch.delenv("ATELIER_GATEWAY_URL", raising=False)
