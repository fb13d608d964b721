"""An AI judge: an LLM behind any OpenAI-compatible URL (Atelier's own endpoints included) scores each
completion against a rubric (SageMaker calls these reward prompts). A judge that times out, fails or
answers something that is not a score gives 0 for that completion, with a logged reason, never a crash."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from workers.training.chat import ChatFailed, chat
from workers.training.graders import text
from workers.training.keys import key_from_env

log = logging.getLogger("atelier.judge")

SYSTEM = (
    "You are a strict grader. Read the rubric, the user's request and the answer, and rate how well the "
    "answer meets the rubric on a scale from 0 (not at all) to 10 (perfectly). Reply with the number only."
)
SCORE = re.compile(r"(?<![\d.])(10|[0-9](?:\.\d+)?)(?![\d.])")
REVIEW_SYSTEM = (
    "You are a careful grader. Read the rubric, the user's request, the reference answer if there is one, "
    "and the answer. Explain your judgement in one or two sentences, then end with a last line "
    "`Score: N`, N from 0 (does not meet the rubric) to 10 (meets it perfectly)."
)
PAIRWISE_SYSTEM = (
    "You compare two answers to the same request against a rubric. Ignore their order and length; judge "
    "only which better meets the rubric. Explain in one or two sentences, then end with a last line "
    "`Verdict: A`, `Verdict: B` or `Verdict: tie`."
)
LAST_SCORE = re.compile(r"score\s*[:=]\s*(10|[0-9](?:\.\d+)?)(?![\d.])", re.IGNORECASE)
# "Verdict: B" anywhere, or a reply that is only the letter (or "tie").
VERDICT = re.compile(r"verdict\s*[:=]\s*\**\s*(A|B|tie)\b|\A\s*(A|B|tie)\W*\Z", re.IGNORECASE)


class JudgeUnavailable(RuntimeError):
    """No usable answer from the judge, with the reason."""


@dataclass(frozen=True)
class Verdict:
    """A score (0 to 1) or a choice ("A", "B", "tie"); None with a `problem` when there is none."""

    value: Any
    reasoning: str = ""
    problem: str = ""


def _request_text(prompt: Any) -> str:
    return (
        text(prompt) if not isinstance(prompt, list) else "\n".join(str(m.get("content", "")) for m in prompt)
    )


def _reason(reply: str, match: re.Match[str]) -> str:
    return (reply[: match.start()] + reply[match.end() :]).strip()


@dataclass
class Judge:
    base_url: str
    model: str
    rubric: str
    api_key: str | None = None
    timeout: float = 10.0
    concurrency: int = 8
    reason_tokens: int = 256
    failures: list[str] = field(default_factory=list)

    @classmethod
    def configured(
        cls, base_url: str, model: str, rubric: str, api_key_env: str | None, timeout: float
    ) -> Judge:
        """A judge whose API key is in `api_key_env`, one of the variables the runner fills
        (workers.training.keys); any other name gives no key."""
        return cls(base_url, model, rubric, api_key=key_from_env(api_key_env), timeout=timeout)

    def _chat(self, system: str, user: str, max_tokens: int) -> str:
        """The judge's reply; raises JudgeUnavailable with the reason it could not be had."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            return chat(self.base_url, self.model, messages, api_key=self.api_key, timeout=self.timeout,
                        temperature=0, max_tokens=max_tokens)  # fmt: skip
        except ChatFailed as exc:
            if exc.kind == "timeout":
                raise JudgeUnavailable(f"the judge did not answer within {self.timeout:g} s") from exc
            if exc.kind == "refused":
                raise JudgeUnavailable(f"the judge's URL cannot be requested: {exc.detail}") from exc
            raise JudgeUnavailable(f"the judge's answer could not be used: {exc.detail}") from exc

    def _ask(self, prompt: Any, completion: Any, rubric: str) -> float:
        user = f"Rubric: {rubric}\n\nRequest: {_request_text(prompt)}\n\nAnswer: {text(completion)}\n\nScore (0-10):"
        try:
            reply = self._chat(SYSTEM, user, max_tokens=8)
        except JudgeUnavailable as exc:
            return self._zero(str(exc))
        match = SCORE.search(reply)
        if not match:
            return self._zero(f"the judge answered {reply[:80]!r}, which holds no score from 0 to 10")
        return float(match.group(1)) / 10

    # Evaluation reports: a reason with every verdict, and None (not 0) when there is no verdict.

    def _verdict(
        self, system: str, user: str, patterns: tuple[re.Pattern[str], ...], wanted: str
    ) -> tuple[Verdict | None, str, Any]:
        """(a no-verdict Verdict, "", None) when the judge gave nothing usable, else (None, reply, match)."""
        try:
            reply = self._chat(system, user, max_tokens=self.reason_tokens)
        except JudgeUnavailable as exc:
            return Verdict(None, "", str(exc)), "", None
        match = next((m for m in (p.search(reply) for p in patterns) if m), None)
        if not match:
            return Verdict(None, reply, f"the judge answered {reply[:80]!r}, which {wanted}"), reply, None
        return None, reply, match

    def review(
        self, prompt: Any, completion: Any, reference: Any = None, rubric: str | None = None
    ) -> Verdict:
        """A rubric score from 0 to 1 with the judge's reasoning."""
        known = f"\n\nReference answer: {text(reference)}" if reference not in (None, "") else ""
        user = (f"Rubric: {rubric or self.rubric}\n\nRequest: {_request_text(prompt)}{known}\n\n"
                f"Answer: {text(completion)}\n\nScore (0-10):")  # fmt: skip
        failed, reply, match = self._verdict(
            REVIEW_SYSTEM, user, (LAST_SCORE, SCORE), "holds no score from 0 to 10"
        )
        if failed:
            return failed
        return Verdict(float(match.group(1)) / 10, _reason(reply, match))

    def compare(self, prompt: Any, first: Any, second: Any, rubric: str | None = None) -> Verdict:
        """Which of two answers is better: value "A", "B" or "tie", with the judge's reasoning."""
        user = (f"Rubric: {rubric or self.rubric}\n\nRequest: {_request_text(prompt)}\n\n"
                f"Answer A: {text(first)}\n\nAnswer B: {text(second)}\n\nWhich answer is better?")  # fmt: skip
        failed, reply, match = self._verdict(
            PAIRWISE_SYSTEM, user, (VERDICT,), "names neither A, B nor a tie"
        )
        if failed:
            return failed
        choice = (match.group(1) or match.group(2)).upper()
        return Verdict("tie" if choice == "TIE" else choice, _reason(reply, match))

    def _zero(self, reason: str) -> float:
        self.failures.append(reason)
        log.warning("judge scored 0: %s", reason)
        return 0.0

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        rubrics = columns.get("rubric") or [self.rubric] * len(completions)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._ask, prompts, completions, [r or self.rubric for r in rubrics]))
