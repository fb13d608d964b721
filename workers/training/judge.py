"""An AI judge: an LLM behind any OpenAI-compatible URL (Atelier's own endpoints included) scores each
completion against a rubric (SageMaker calls these reward prompts). A judge that times out, fails or
answers something that is not a score gives 0 for that completion, with a logged reason, never a crash;
but a judge that fails on more than half of its first calls cannot grade at all, and says so at once
(JudgeFailed for a training run, a problem in words for every later judgement of a report) instead of
training on rewards of 0 or waiting out hundreds of timeouts."""

from __future__ import annotations

import logging
import re
import threading
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
# A score request's answer: the number, or a short check and then `Score: N` (the built-in judge writes
# its letter-by-letter check first, workers.training.builtin_judge: at most about 40 tokens).
SCORE_TOKENS = 48
LAST_SCORE = re.compile(r"score\s*[:=]\s*(10|[0-9](?:\.\d+)?)(?![\d.])", re.IGNORECASE)
# "Verdict: B" anywhere, or a reply that is only the letter (or "tie").
VERDICT = re.compile(r"verdict\s*[:=]\s*\**\s*(A|B|tie)\b|\A\s*(A|B|tie)\W*\Z", re.IGNORECASE)


# The judge's first calls decide whether it can grade at all: 32 is one to four GRPO steps at the batch
# sizes here, and enough calls that a judge right half the time is not refused by bad luck. The decision
# is made from the 8th call on (8 = the judge's concurrency: the first wave of a report's judgements).
PROBE_CALLS = 32
PROBE_MIN_CALLS = 8


class JudgeUnavailable(RuntimeError):
    """No usable answer from the judge, with the reason."""


class JudgeFailed(ValueError):
    """The judge failed on more than half of its first calls: the message says why, in the judge's own
    words, and what to change. A ValueError, so the training CLI ends the job with this message."""


def _advice(reason: str) -> str:
    if "holds no score" in reason or "names neither" in reason:
        return "choose a judge model that can grade (it must answer with a score from 0 to 10)"
    if "did not answer within" in reason:
        return "raise the judge's timeout, or choose a faster judge"
    return "check the judge's URL (or endpoint), its model name and its key"


@dataclass(frozen=True)
class Verdict:
    """A score (0 to 1) or a choice ("A", "B", "tie"); None with a `problem` when there is none."""

    value: Any
    reasoning: str = ""
    problem: str = ""


def _request_text(prompt: Any) -> str:
    if isinstance(prompt, list):
        return "\n".join(str(m.get("content", "")) for m in prompt if isinstance(m, dict))
    return text(prompt)


# The judge's three requests, built here only: Judge sends them, and the web app counts their tokens
# against a judge endpoint's context (apps.core.fit) before launch.


def score_messages(rubric: str, prompt: Any, completion: Any) -> list[dict[str, str]]:
    user = (
        f"Rubric: {rubric}\n\nRequest: {_request_text(prompt)}\n\nAnswer: {text(completion)}\n\nScore (0-10):"
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def review_messages(rubric: str, prompt: Any, completion: Any, reference: Any = None) -> list[dict[str, str]]:
    known = f"\n\nReference answer: {text(reference)}" if reference not in (None, "") else ""
    user = (f"Rubric: {rubric}\n\nRequest: {_request_text(prompt)}{known}\n\n"
            f"Answer: {text(completion)}\n\nScore (0-10):")  # fmt: skip
    return [{"role": "system", "content": REVIEW_SYSTEM}, {"role": "user", "content": user}]


def compare_messages(rubric: str, prompt: Any, first: Any, second: Any) -> list[dict[str, str]]:
    user = (f"Rubric: {rubric}\n\nRequest: {_request_text(prompt)}\n\n"
            f"Answer A: {text(first)}\n\nAnswer B: {text(second)}\n\nWhich answer is better?")  # fmt: skip
    return [{"role": "system", "content": PAIRWISE_SYSTEM}, {"role": "user", "content": user}]


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
    calls: int = 0  # judgements asked for, and how many of the first PROBE_CALLS failed
    early_failures: int = 0
    first_problem: str = ""
    # Set once the judge failed on more than half of its first calls: the reason, in words.
    broken: str | None = None
    # Off for the wizard's Try, which shows every row's own reason rather than stopping at the first.
    fail_fast: bool = True
    # A list for the wizard's Try: the reasoning the judge wrote beside each score it gave (its reply
    # without the score), so a person sees why an answer passed or failed.
    reasons: list[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def configured(
        cls, base_url: str, model: str, rubric: str, api_key_env: str | None, timeout: float
    ) -> Judge:
        """A judge whose API key is in `api_key_env`, one of the variables the runner fills
        (workers.training.keys); any other name gives no key."""
        return cls(base_url, model, rubric, api_key=key_from_env(api_key_env), timeout=timeout)

    def _chat(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        """The judge's reply; raises JudgeUnavailable with the reason it could not be had."""
        try:
            return chat(self.base_url, self.model, messages, api_key=self.api_key, timeout=self.timeout,
                        temperature=0, max_tokens=max_tokens)  # fmt: skip
        except ChatFailed as exc:
            if exc.kind == "timeout":
                raise JudgeUnavailable(f"the judge did not answer within {self.timeout:g} s") from exc
            if exc.kind == "refused":
                raise JudgeUnavailable(f"the judge's URL cannot be requested: {exc.detail}") from exc
            raise JudgeUnavailable(f"the judge's answer could not be used: {exc.detail}") from exc

    def _record(self, problem: str | None) -> None:
        """Count one judgement; the first problem of a judge failing on more than half of its first
        calls becomes `broken`."""
        with self._lock:
            self.calls += 1
            if self.calls > PROBE_CALLS:
                return
            if problem:
                self.early_failures += 1
                self.first_problem = self.first_problem or problem
            if (self.fail_fast and self.broken is None and self.calls >= PROBE_MIN_CALLS
                    and 2 * self.early_failures > self.calls):  # fmt: skip
                self.broken = self._failed_message()

    def _failed_message(self) -> str:
        reason = self.first_problem or "the judge gave no usable answer"
        return (f"{reason[:1].upper()}{reason[1:]}: {_advice(reason)}. (It failed on {self.early_failures} of its "
                f"first {self.calls} judgements, so it is not asked again: rewards of 0 teach nothing.)")  # fmt: skip

    def _ask(self, prompt: Any, completion: Any, rubric: str) -> float:
        try:
            reply = self._chat(score_messages(rubric, prompt, completion), max_tokens=SCORE_TOKENS)
        except JudgeUnavailable as exc:
            return self._zero(str(exc))
        match = LAST_SCORE.search(reply) or SCORE.search(reply)
        if not match:
            return self._zero(f"the judge answered “{reply.strip()[:80]}”, which holds no score from 0 to 10")
        self._record(None)
        if self.reasons is not None:
            self.reasons.append(_reason(reply, match))
        return float(match.group(1)) / 10

    # Evaluation reports: a reason with every verdict, and None (not 0) when there is no verdict.

    def _verdict(
        self, messages: list[dict[str, str]], patterns: tuple[re.Pattern[str], ...], wanted: str
    ) -> tuple[Verdict | None, str, Any]:
        """(a no-verdict Verdict, "", None) when the judge gave nothing usable, else (None, reply, match).
        Once the judge is `broken` it is not asked again: every later judgement has that problem."""
        if self.broken:
            return Verdict(None, "", self.broken), "", None
        try:
            reply = self._chat(messages, max_tokens=self.reason_tokens)
        except JudgeUnavailable as exc:
            self._record(str(exc))
            return Verdict(None, "", str(exc)), "", None
        match = next((m for m in (p.search(reply) for p in patterns) if m), None)
        if not match:
            problem = f"the judge answered “{reply.strip()[:80]}”, which {wanted}"
            self._record(problem)
            return Verdict(None, reply, problem), reply, None
        self._record(None)
        return None, reply, match

    def review(
        self, prompt: Any, completion: Any, reference: Any = None, rubric: str | None = None
    ) -> Verdict:
        """A rubric score from 0 to 1 with the judge's reasoning."""
        failed, reply, match = self._verdict(
            review_messages(rubric or self.rubric, prompt, completion, reference),
            (LAST_SCORE, SCORE),
            "holds no score from 0 to 10",
        )
        if failed:
            return failed
        return Verdict(float(match.group(1)) / 10, _reason(reply, match))

    def compare(self, prompt: Any, first: Any, second: Any, rubric: str | None = None) -> Verdict:
        """Which of two answers is better: value "A", "B" or "tie", with the judge's reasoning."""
        failed, reply, match = self._verdict(
            compare_messages(rubric or self.rubric, prompt, first, second),
            (VERDICT,),
            "names neither A, B nor a tie",
        )
        if failed:
            return failed
        choice = (match.group(1) or match.group(2)).upper()
        return Verdict("tie" if choice == "TIE" else choice, _reason(reply, match))

    def _zero(self, reason: str) -> float:
        self.failures.append(reason)
        self._record(reason)
        log.warning("judge scored 0: %s", reason)
        return 0.0

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        """Rewards for a batch (TRL's reward function). JudgeFailed once the judge failed on more than
        half of its first calls: a run rewarded 0 everywhere learns nothing and must not "succeed"."""
        rubrics = columns.get("rubric") or [self.rubric] * len(completions)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            scores = list(pool.map(self._ask, prompts, completions, [r or self.rubric for r in rubrics]))
        with self._lock:
            # Decided on the first batch, however small (the probe's minimum is for reports' waves).
            if (
                self.fail_fast
                and self.broken is None
                and 2 * self.early_failures > min(self.calls, PROBE_CALLS)
            ):
                self.broken = self._failed_message()
        if self.broken:
            raise JudgeFailed(self.broken)
        return scores
