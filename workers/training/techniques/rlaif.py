"""Reinforcement learning from AI feedback: GRPO rewarded by an AI judge (an LLM at any
OpenAI-compatible URL, scoring against a rubric) or by a local reward model. `prompt` rows, with an
optional per-row `rubric`. A learned reward can be gamed (here a reward model's score rose while exact
match fell to 0): always evaluate on held-out data with real graders beside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.training.techniques.base import Format, Synthetic, Technique
from workers.training.techniques.rlvr import GRPOSampling, grpo_config


@dataclass(frozen=True)
class RLAIFParams(GRPOSampling):
    # "endpoint": the web app offers the project's endpoints by id; the worker's runner turns the id into
    # the gateway's URL and the endpoint's name, with an API key made for this run and revoked after it.
    judge_endpoint: str = field(
        default="",
        metadata={"help": "One of this project's endpoints as the judge, reached through Atelier's gateway "
                          "with a key made for this run only. Or give a URL and model below.",
                  "endpoint": True},
    )  # fmt: skip
    judge_url: str = field(
        default="",
        metadata={"help": "Base URL of an OpenAI-compatible API, e.g. http://host/v1.", "outbound": True},
    )
    judge_model: str = field(default="", metadata={"help": "The judge model's name at that URL."})
    judge_key: str = field(
        default="",
        metadata={"help": "The URL judge's API key: one of the project's secrets (Settings → Secrets) or a "
                          "variable of the workers' environment.", "secret": True},
    )  # fmt: skip
    rubric: str = field(
        default="The answer is correct, complete and concise.", metadata={"help": "What a good answer is."}
    )
    # "model": the web app vets it like every model field (a hub id or a folder an administrator offers).
    reward_model: str = field(
        default="",
        metadata={
            "help": "Instead of a judge: a local reward model (sequence classification).",
            "model": True,
        },
    )
    judge_timeout: float = field(
        default=10.0, metadata={"help": "Seconds to wait for each judgement.", "min": 0.1, "max": 600}
    )


def make_judge(params: RLAIFParams) -> Any:
    """The judge the parameters describe (named for TRL's reward logs), or None without URL and model."""
    from workers.training.judge import Judge
    from workers.training.keys import JUDGE_KEY_ENV

    if params.judge_endpoint and not params.judge_url:
        raise ValueError(
            "The judge is one of the project's endpoints: only a job started from the web app (whose worker "
            "reaches the endpoint through the gateway) can use it."
        )
    if not (params.judge_url and params.judge_model):
        return None
    # `judge_key` names a secret, `judge_endpoint` gets a key made for the run: the runner puts either
    # in JUDGE_KEY_ENV for this run only.
    key_env = JUDGE_KEY_ENV if params.judge_key or params.judge_endpoint else None
    judge = Judge.configured(
        params.judge_url, params.judge_model, params.rubric, key_env, params.judge_timeout
    )
    judge.__name__ = "judge"  # type: ignore[attr-defined]
    return judge


def scorers(params: RLAIFParams) -> dict[str, Any]:
    """The Technique step's Try: the judge, with each row's own reason beside it (it does not stop at the
    first failure) and its reasoning when it scored."""
    judge = make_judge(params)
    if judge is None:
        raise ValueError("RLAIF needs a judge: its URL and model name.")
    judge.fail_fast = False
    judge.reasons = []
    return {"judge": judge}


def build_trainer(ctx: Any) -> Any:
    from trl import GRPOTrainer

    params: RLAIFParams = ctx.params
    reward: Any = params.reward_model or make_judge(params)
    if not reward:
        raise ValueError("RLAIF needs a judge (its URL and model) or a reward model.")
    return GRPOTrainer(reward_funcs=[reward], args=grpo_config(ctx, params), **ctx.trainer_kwargs())


TECHNIQUE = Technique(
    name="rlaif",
    short="RLAIF",
    title="RL from AI feedback",
    summary="Reward answers that an AI judge rates well against your rubric. Use it when quality is a matter of judgement.",
    params=RLAIFParams,
    build=build_trainer,
    formats=(Format(("prompt",)),),
    learning_rates={
        # GRPO with a judge for reward: RLVR's rates, except the tiny model's LoRA rate. Judged by the
        # built-in judge through the gateway (tests/training/test_automatic.py), 1e-3 raised the judge's
        # reward from 0.30 to 0.48 (first and second half of the steps) while held-out exact match went
        # 0.32 → 0.30: the policy found the answers the judge wrongly passes (it agrees with exact match on
        # 93% of pairs). At 3e-4 the reward rose less (0.32 → 0.41) and held-out went 0.32 → 0.36 (later,
        # with the judge's checks marked, 36% → 50% on an AMD EPYC). On an Intel Xeon the same run at 3e-4
        # fell 36% → 26% (its sums sample other answers): 1e-4 kept 36% → 36% there with the reward
        # rising. A learned reward is gamed the faster the policy moves (DESIGN.md).
        "lora": (1e-4, 1e-5),
        "full": (1e-4, 1e-6),
    },
    synthetic=Synthetic(
        label="RLAIF: prompts for a judge to score",
        fields=("prompt",),
        hint='{"prompt": "what a user asks"}',
    ),
    samples_answers=True,
    judged=True,
    scorers=scorers,
    signal="reward",
)
