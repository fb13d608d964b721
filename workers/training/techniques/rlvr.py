"""Reinforcement learning with verifiable rewards: TRL's GRPOTrainer samples several answers to each
prompt and reinforces those the graders score higher. `prompt` rows plus the graders' reference columns
(e.g. `answer`). It needs a model that is sometimes right already: groups that all score the same teach
nothing (from 20% right GRPO learned nothing here; from 38% it reached 98%)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.training.graders import REGISTRY as GRADERS
from workers.training.graders import GraderOptionError, check_options, missing_option
from workers.training.techniques.base import Format, Synthetic, Technique


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
                  "choices": tuple(GRADERS), "graders": True},
    )  # fmt: skip
    # The form shows each chosen grader's options as its own fields (graders.GraderInfo.options).
    grader_options: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={"help": "Options per grader: a regex's pattern, a JSON schema, a Python grader's code.",
                  "grader_options": True},
    )  # fmt: skip

    def __post_init__(self) -> None:
        check_options(self.grader_options)  # a spec written by hand is held to the form's bounds
        for name in self.graders:
            if name in GRADERS and (option := missing_option(name, self.grader_options.get(name, {}))):
                raise GraderOptionError(f"{GRADERS[name].label} needs its “{option}” option.")


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


TECHNIQUE = Technique(
    name="rlvr",
    short="RLVR",
    title="RL with verifiable rewards",
    summary="Reward answers that pass automatic checks (exact answer, math, format). Use it on a model that is sometimes right.",
    params=RLVRParams,
    build=build_trainer,
    formats=(Format(("prompt",)),),
    learning_rates={
        # Tiny, in batches of 32 answers (hparams.GRPO_BATCH_TINY): 1e-3 (bench/grpo_plan.py; see
        # hparams.GRPO_EPOCHS_TINY). In batches of 16, 3e-3 (the old automatic value) collapsed GRPO
        # (held-out 0.36 → 0.00, reward 0 by the last tenth; bench/results/hparams_sweep.json). Larger: 1e-5,
        # ten times TRL's full-model GRPO default (adapters start from zero and move few weights; the same
        # ratio as Unsloth's 2e-4 LoRA against TRL's 2e-5 full SFT rate).
        "lora": (1e-3, 1e-5),
        # Tiny, in batches of 32 answers: 1e-4 raised the reward (0.16 → 0.26) and held-out (0.32 → 0.44;
        # one seed, bench/grpo_plan.py); in batches of 16 at temperature 1.0, 1e-4 and 2e-4 fell from 0.36
        # to 0.34 and 0.26 (hparams_sweep.json). Larger: 1e-6, TRL's GRPOConfig default
        # (trl/trainer/grpo_config.py).
        "full": (1e-4, 1e-6),
    },
    synthetic=Synthetic(
        label="RLVR: tasks with a checkable answer",
        fields=("prompt", "answer"),
        hint='{"prompt": "a task with one checkable answer", "answer": "that answer, short"}',
    ),
    samples_answers=True,
    # The job's own graders score its held-out rows, with their options.
    graders=lambda params: (list(params.graders), dict(params.grader_options)),
    scorers=make_graders,
    signal="reward",
)
