"""Guardrails for reinforcement learning (GRPO: RLVR and RLAIF), from the numbers TRL's GRPOTrainer logs
(reward, reward_std, frac_reward_zero_std, completions/clipped_ratio, kl, entropy; trl 1.16
grpo_trainer.py) and from the held-out curve. Each one says in words what is happening and what to change;
the runner emits it as a `guardrail` event while it happens. Pure Python: testable without a model.

One of them stops the run: a reward that has been 0 for the first 20% of the steps. GRPO learns only from
differences between the answers to one prompt; when none is ever rewarded, the rest of the run would learn
nothing (measured on the tiny model: from a base right 20% of the time, 150 GRPO steps learned nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

ZERO_REWARD_FRACTION = 0.2  # of max_steps: a reward of 0 all that time stops the run
RUN = 3  # consecutive logs a condition must hold before it is reported (one noisy log is not a trend)


@dataclass(frozen=True)
class Alarm:
    code: str
    level: str  # "warning" | "stop"
    message: str


def _number(logs: dict[str, Any], key: str) -> float | None:
    value = logs.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


@dataclass
class Guardrails:
    """Fed every log of a run (and every held-out check); returns the alarms that start now."""

    max_steps: int
    max_completion_length: int | None = None
    rewards: list[tuple[int, float]] = field(default_factory=list)
    streaks: dict[str, int] = field(default_factory=dict)
    active: set[str] = field(default_factory=set)
    first: dict[str, float] = field(default_factory=dict)
    heldout: list[tuple[int, float]] = field(default_factory=list)

    def _hold(self, code: str, condition: bool) -> bool:
        """True once, when `condition` has held for RUN logs in a row; again only after it has been false
        for RUN logs in a row (a ratio hovering at its threshold is one episode, not many)."""
        key = code if condition else f"{code}:clear"
        self.streaks[key] = self.streaks.get(key, 0) + 1
        self.streaks[f"{code}:clear" if condition else code] = 0
        if not condition:
            if self.streaks[key] >= RUN:
                self.active.discard(code)
            return False
        if self.streaks[key] >= RUN and code not in self.active:
            self.active.add(code)
            return True
        return False

    def on_log(self, step: int, logs: dict[str, Any]) -> list[Alarm]:
        alarms: list[Alarm] = []
        reward = _number(logs, "reward")
        if reward is None:
            return alarms  # not a GRPO log (or the closing summary)
        self.rewards.append((step, reward))
        for key in ("kl", "entropy"):
            value = _number(logs, key)
            if value is not None and key not in self.first and value > 0:
                self.first[key] = value

        # From the start of the run only: a resumed process has not seen the rewards before its checkpoint.
        from_start = self.rewards[0][0] <= max(10, 0.05 * self.max_steps)
        if (
            from_start
            and all(r <= 1e-9 for _, r in self.rewards)
            and step >= max(ZERO_REWARD_FRACTION * self.max_steps, RUN)  # a short run: not on one log
        ):
            alarms.append(Alarm("reward_zero", "stop", (
                f"No answer earned any reward in the first {step} of {self.max_steps} steps, so there is nothing "
                "to learn from: the run stops here. Start from a model that is sometimes right (train it with SFT "
                "first), check that the graders' reference column matches what the model writes, or sample "
                "more answers per prompt (num_generations) at a higher temperature.")))  # fmt: skip
            self.active.add("reward_zero")
            return alarms
        if self._hold("reward_zero", reward <= 1e-9):
            alarms.append(Alarm("reward_zero", "warning", (
                f"The reward has been 0 for the last {RUN} logs (step {step}): no answer passes. "
                "Lower the learning rate if it was higher before, or check the graders against a few answers.")))  # fmt: skip
        if self._hold("reward_one", reward >= 0.999):
            alarms.append(Alarm("reward_one", "warning", (
                f"Every answer earns the full reward (step {step}): the task is solved for these prompts and "
                "nothing more can be learned from them. Use harder prompts or stricter graders; the run keeps "
                "its best checkpoint.")))  # fmt: skip
        zero_std = _number(logs, "frac_reward_zero_std")
        if zero_std is not None and self._hold("zero_variance", zero_std >= 0.9 and 1e-9 < reward < 0.999):
            alarms.append(Alarm("zero_variance", "warning", (
                f"In {zero_std:.0%} of the groups every answer got the same reward (step {step}), so those "
                "groups teach nothing. Sample more answers per prompt (num_generations) or raise the temperature.")))  # fmt: skip
        clipped = _number(logs, "completions/clipped_ratio")
        if clipped is not None and self._hold("clipped", clipped >= 0.95):
            limit = f" of {self.max_completion_length} tokens" if self.max_completion_length else ""
            alarms.append(Alarm("clipped", "warning", (
                f"{clipped:.0%} of the answers were cut off at the maximum length{limit} (step {step}): the "
                "model no longer ends its answers. Raise max_completion_length if answers are long, otherwise "
                "lower the learning rate.")))  # fmt: skip
        kl = _number(logs, "kl")
        if kl is not None and self._hold("kl_runaway", kl > 1.0 and kl > 10 * self.first.get("kl", kl)):
            alarms.append(Alarm("kl_runaway", "warning", (
                f"The model has moved far from where it started (KL {kl:.2f} at step {step}, from "
                f"{self.first.get('kl', 0):.3f}). Lower the learning rate or raise beta (the KL weight).")))  # fmt: skip
        entropy = _number(logs, "entropy")
        start = self.first.get("entropy")
        if entropy is not None and start and self._hold("entropy_collapse", entropy < 0.1 * start):
            alarms.append(Alarm("entropy_collapse", "warning", (
                f"The answers have lost their variety (entropy {entropy:.3f} at step {step}, from {start:.3f}): "
                "every sample is alike, so there is nothing to compare. Lower the learning rate or raise the "
                "temperature.")))  # fmt: skip
        return alarms

    def on_heldout(self, step: int, score: float) -> list[Alarm]:
        """Held-out falling while the reward rises: the model pleases the reward, not the task."""
        self.heldout.append((step, score))
        if len(self.heldout) < 2 or len(self.rewards) < 2:
            return []
        start, now = self.heldout[0][1], score
        tenth = max(1, len(self.rewards) // 10)
        early = sum(r for _, r in self.rewards[:tenth]) / tenth
        late = sum(r for _, r in self.rewards[-tenth:]) / tenth
        falling = now < start - 0.1 and late > early + 0.05
        if not falling:
            self.active.discard("heldout_falling")
            return []
        if "heldout_falling" in self.active:
            return []
        self.active.add("heldout_falling")
        return [Alarm("heldout_falling", "warning", (
            f"The reward rises ({early:.2f} → {late:.2f}) while the held-out score falls ({start:.0%} → {now:.0%}, "
            f"step {step}): the model is learning to please the reward, not to do the task. Check the graders or "
            "the judge's rubric and lower the learning rate; the best checkpoint so far is kept.")) ]  # fmt: skip


def diverged(step: int, key: str, value: float) -> Alarm:
    return Alarm("diverged", "stop", (
        f"The {key.replace('_', ' ')} became {value} at step {step}: training diverged. "
        "Lower the learning rate (try a tenth of it) and start again."))  # fmt: skip
