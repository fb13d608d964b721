"""A minimal OpenAI-compatible chat-completions server for the judge tests, run as its own process.

It is a stand-in for an LLM judge, which the tiny model cannot be: the `reverse-judge` model scores a
reversal by rule (10 when right, fewer points for each wrong letter); `garbage` answers prose with no
score; `slow` answers after 5 s. Run: python tests/training/judge_server.py PORT
"""

from __future__ import annotations

import json
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _score(content: str) -> str:
    request = re.search(r"Request: reverse: ([a-z ]+)", content)
    answer = re.search(r"Answer: (.*)\n\nScore", content, re.DOTALL)
    if not request or not answer:
        return "0"
    expected = request.group(1).strip().split()[::-1]
    given = answer.group(1).strip().split()
    right = sum(a == b for a, b in zip(expected, given, strict=False))
    penalty = abs(len(expected) - len(given))
    return str(round(10 * max(0, right - penalty) / len(expected)))


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body["model"]
        if model == "slow":
            time.sleep(5)
        content = body["messages"][-1]["content"]
        reply = "It looks quite good to me." if model == "garbage" else _score(content)
        payload = {
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
