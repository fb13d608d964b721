"""An AI judge: an LLM behind any OpenAI-compatible URL (Atelier's own endpoints included) scores each
completion against a rubric (SageMaker calls these reward prompts). A judge that times out, fails or
answers something that is not a score gives 0 for that completion, with a logged reason, never a crash."""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from workers.training.graders import text

log = logging.getLogger("atelier.judge")

SYSTEM = (
    "You are a strict grader. Read the rubric, the user's request and the answer, and rate how well the "
    "answer meets the rubric on a scale from 0 (not at all) to 10 (perfectly). Reply with the number only."
)
SCORE = re.compile(r"(?<![\d.])(10|[0-9](?:\.\d+)?)(?![\d.])")


@dataclass
class Judge:
    base_url: str
    model: str
    rubric: str
    api_key: str | None = None
    timeout: float = 10.0
    concurrency: int = 8
    failures: list[str] = field(default_factory=list)

    def _ask(self, prompt: Any, completion: Any, rubric: str) -> float:
        request_text = (
            text(prompt)
            if not isinstance(prompt, list)
            else "\n".join(str(m.get("content", "")) for m in prompt)
        )
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Rubric: {rubric}\n\nRequest: {request_text}\n\nAnswer: {text(completion)}\n\nScore (0-10):"},
            ],
            "temperature": 0,
            "max_tokens": 8,
        }  # fmt: skip
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(  # noqa: S310 - the judge's URL is the user's choice
            f"{self.base_url.rstrip('/')}/chat/completions", data=json.dumps(body).encode(), headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                reply = json.loads(response.read())["choices"][0]["message"]["content"]
        except TimeoutError:
            return self._zero(f"the judge did not answer within {self.timeout:g} s")
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            return self._zero(f"the judge's answer could not be used: {exc}")
        match = SCORE.search(str(reply))
        if not match:
            return self._zero(f"the judge answered {str(reply)[:80]!r}, which holds no score from 0 to 10")
        return float(match.group(1)) / 10

    def _zero(self, reason: str) -> float:
        self.failures.append(reason)
        log.warning("judge scored 0: %s", reason)
        return 0.0

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        rubrics = columns.get("rubric") or [self.rubric] * len(completions)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._ask, prompts, completions, [r or self.rubric for r in rubrics]))
