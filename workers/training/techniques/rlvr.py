"""Reinforcement learning with verifiable rewards: TRL's GRPOTrainer samples several answers to each
prompt and reinforces those the graders score higher. `prompt` rows plus the graders' reference columns
(e.g. `answer`). It needs a model that is sometimes right already: groups that all score the same teach
nothing (from 20% right GRPO learned nothing here; from 38% it reached 98%)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.training.graders import check_options

SUMMARY = "Reward answers that pass automatic checks (exact answer, math, format). Use it on a model that is sometimes right."


@dataclass(frozen=True)
class GRPOSampling:
    """How GRPO samples answers: shared by RLVR and RLAIF. None (blank in the wizard): chosen
    automatically from the model's size (workers.training.hparams.grpo_sampling)."""

    num_generations: int | None = field(
        default=None, metadata={"help": "Answers sampled per prompt. Blank: automatic.", "min": 2, "max": 64}
    )
    max_completion_length: int = field(
        default=16, metadata={"help": "Longest answer sampled, in tokens.", "min": 1, "max": 8192}
    )
    temperature: float | None = field(
        default=None, metadata={"help": "Sampling temperature. Blank: automatic.", "min": 0.1, "max": 2.0}
    )
    beta: float | None = field(
        default=None,
        metadata={
            "help": "Pull towards the starting model (KL weight); 0 saves memory. Blank: automatic.",
            "min": 0.0,
            "max": 1.0,
        },
    )


@dataclass(frozen=True)
class RLVRParams(GRPOSampling):
    graders: tuple[str, ...] = field(
        default=("exact_match",),
        metadata={"help": "The checks that score each answer; their scores are added up.",
                  "choices": ("exact_match", "contains", "math_match", "regex", "json_schema", "python")},
    )  # fmt: skip
    grader_options: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={"help": "Options per grader: a regex's pattern, a JSON schema, a Python grader's code.",
                  "check": check_options},
    )  # fmt: skip

    def __post_init__(self) -> None:
        check_options(self.grader_options)  # a spec written by hand is held to the form's bounds


def sampling(params: Any, hparams: Any) -> tuple[int, float, float]:
    """(answers per prompt, temperature, KL weight): the person's where set, else the run's plan
    (workers.training.hparams.resolve chose them from the model's size)."""

    def pick(mine: Any, planned: Any) -> Any:
        if mine is not None:
            return mine
        if planned is None:
            raise ValueError(
                "GRPO's sampling was not planned: resolve the hyperparameters for RLVR or RLAIF."
            )
        return planned

    return (
        int(pick(params.num_generations, hparams.num_generations)),
        float(pick(params.temperature, hparams.temperature)),
        float(pick(params.beta, hparams.kl_beta)),
    )


def grpo_config(ctx: Any, params: Any) -> Any:
    from trl import GRPOConfig

    args = ctx.trainer_args()
    generations, temperature, beta = sampling(params, ctx.hparams)
    # GRPO's batch is made of whole groups: a multiple of the answers sampled per prompt.
    batch = max(generations, args["per_device_train_batch_size"] // generations * generations)
    args["per_device_train_batch_size"] = batch
    return GRPOConfig(
        **args,
        num_generations=generations,
        max_completion_length=params.max_completion_length,
        temperature=temperature,
        beta=beta,
        log_completions=False,
    )


def make_graders(params: RLVRParams) -> dict[str, Any]:
    """The chosen graders by name, each with its options bound."""
    from workers.training.graders import make

    return {name: make(name, **params.grader_options.get(name, {})) for name in params.graders}


def build_trainer(ctx: Any) -> Any:
    from trl import GRPOTrainer

    params: RLVRParams = ctx.params
    rewards = list(make_graders(params).values())
    return GRPOTrainer(reward_funcs=rewards, args=grpo_config(ctx, params), **ctx.trainer_kwargs())
