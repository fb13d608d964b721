"""A stand-in teacher for the synthetic-data tests of parsing, failure paths and the form's URL probe
(the whole flow runs with the built-in teacher, atelier-tiny/teacher: tests/synthetic/). It speaks the
OpenAI chat API and answers the pipeline's two requests by rule:
a topic tree, and examples of the reverse task in the technique's fields, grounded in nothing. Model
`teacher` is well behaved except that every fourth example reply is prose and every example batch
repeats its first example once (so drops and near-duplicates happen); model `prose` never writes JSON.

    python tests/training/teacher_server.py PORT
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ["cat", "dog", "sun", "tree", "house", "plane", "river", "cloud", "stone", "apple", "lemon", "piano", "garden", "candle", "window", "rocket", "forest", "silver", "yellow", "bridge", "castle", "dragon", "pencil", "mirror", "basket"]  # fmt: skip
lock = threading.Lock()
calls = {"examples": 0}


def _example(technique: str, word: str) -> dict[str, str]:
    prompt = "reverse: " + " ".join(word)
    answer = " ".join(reversed(word))
    return {
        "sft": {"prompt": prompt, "completion": answer},
        "dpo": {"prompt": prompt, "chosen": answer},
        "rlvr": {"prompt": prompt, "answer": answer},
        "rlaif": {"prompt": prompt},
    }[technique]


def reply(model: str, content: str) -> str:
    if model == "prose":
        return "I would be glad to help with your training data! Here are some ideas about the topic."
    if "Propose up to" in content:
        return json.dumps({"topics": [
            {"name": "Short words", "subtopics": ["three letters", "four letters"]},
            {"name": "Long words", "subtopics": []},
        ]})  # fmt: skip
    technique = next(
        t
        for t, key in (("sft", '"completion"'), ("dpo", '"chosen"'), ("rlvr", '"answer"'), ("rlaif", ""))
        if key in content
    )
    count = int(re.search(r"Write (\d+) new", content).group(1))  # type: ignore[union-attr]
    with lock:
        calls["examples"] += 1
        n = calls["examples"]
    if n % 4 == 0:
        return "Here are some examples of reversing words, I hope they help."
    rng = random.Random(n)
    words = rng.sample(WORDS, k=min(count, len(WORDS)))
    examples = [_example(technique, w) for w in words]
    return "```json\n" + json.dumps({"examples": [*examples, examples[0]]}) + "\n```"


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "tests"}
                                                        for m in ("teacher", "prose")]})  # fmt: skip
        else:
            self._send(
                404,
                {
                    "error": {
                        "message": "not found",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
            )

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        content = body["messages"][-1]["content"]
        text = reply(body["model"], content)
        self._send(200, {
            "id": "chatcmpl-teacher", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        })  # fmt: skip

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
