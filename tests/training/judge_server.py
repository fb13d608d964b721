"""A minimal OpenAI-compatible chat-completions server for the judge tests, run as its own process and
serving a local model: the stand-in for the deployment issue's engine until that exists.

`tiny-judge` scores with a model, not by rule: a tiny model fully trained on the reverse task (stronger
than the one being trained) reads the request and the answer from the judge's prompt, and the score is
10 x its per-token probability of that answer (the geometric mean), so a right answer scores near 10 and
each wrong letter costs what the model thinks it should; asked to compare two answers, it prefers the
likelier one. A tiny model cannot read a rubric; a real deployment points the judge at an
instruction-following model. `garbage` answers prose with no score; `slow` answers after 5 s;
`first-is-best` always prefers the first of two answers. Run: python tests/training/judge_server.py PORT MODEL_FOLDER
"""

from __future__ import annotations

import json
import math
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

REQUEST = re.compile(r"Request: (.*?)\n\n(?:Reference answer: .*?\n\n)?Answer: (.*)\n\nScore", re.DOTALL)
PAIR = re.compile(
    r"Request: (.*?)\n\nAnswer A: (.*?)\n\nAnswer B: (.*)\n\nWhich answer is better\?", re.DOTALL
)


class Scorer:
    def __init__(self, folder: str) -> None:
        torch.set_num_threads(1)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder).eval()
        self.lock = threading.Lock()

    def __call__(self, content: str, reasons: bool = False) -> str:
        """A score for one answer; with `reasons`, a sentence of reasoning and a last `Score:` line."""
        match = REQUEST.search(content)
        if not match:
            return "0"
        p = self.probability(match.group(1).strip(), match.group(2).strip())
        if not reasons:
            return f"{10 * p:.1f}"
        return f"The judge model gives this answer a per-token probability of {p:.2f}.\nScore: {10 * p:.1f}"

    def compare(self, content: str) -> str:
        """Which of two answers the judge model finds likelier: a reason and a last `Verdict:` line."""
        match = PAIR.search(content)
        if not match:
            return "I cannot tell."
        request = match.group(1).strip()
        a, b = (self.probability(request, match.group(i).strip()) for i in (2, 3))
        verdict = "tie" if abs(a - b) < 0.05 else "A" if a > b else "B"
        return (
            f"Answer A has probability {a:.2f} under the judge model, answer B {b:.2f}.\nVerdict: {verdict}"
        )

    def probability(self, request: str, answer: str) -> float:
        prompt = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": request}], tokenize=False, add_generation_prompt=True
        )
        p = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = self.tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + a])
        with self.lock, torch.no_grad():
            logits = self.model(input_ids=ids).logits[0, len(p) - 1 : -1]
        logprob = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(a)[:, None]).mean()
        return math.exp(float(logprob))


class Handler(BaseHTTPRequestHandler):
    scorer: Scorer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body["model"]
        if model == "slow":
            time.sleep(5)
        content = body["messages"][-1]["content"]
        reasons = body.get("max_tokens", 0) > 8  # an evaluation's judge asks for reasons, training's not
        if model == "garbage":
            reply = "It looks quite good to me."
        elif "Which answer is better?" in content:
            # `first-is-best` always prefers answer A: the position bias that judging both orders cancels.
            reply = (
                "A is listed first.\nVerdict: A" if model == "first-is-best" else self.scorer.compare(content)
            )
        else:
            reply = self.scorer(content, reasons=reasons)
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
    Handler.scorer = Scorer(sys.argv[2])
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
