"""A minimal OpenAI-compatible chat-completions server for the unit tests of how Atelier's judge reads
(and fails to read) replies, run as its own process: judges that misbehave in the ways real ones do.
Every test of a judge that grades uses the built-in judge (`atelier-tiny/judge`) served by the built-in
engine (the `builtin_judge_url` fixture), or deployed and reached through the gateway.

`garbage` answers prose with no score; `slow` answers after 5 s; `first-is-best` always prefers the first
of two answers (the position bias that judging both orders cancels). Run: python judge_server.py PORT
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body["model"]
        content = body["messages"][-1]["content"]
        if model == "slow":
            time.sleep(5)
        if model == "first-is-best" and "Which answer is better?" in content:
            reply = "A is listed first.\nVerdict: A"
        else:
            reply = "It looks quite good to me."
        payload: dict[str, Any] = {
            "id": "judge-1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        }  # fmt: skip
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
