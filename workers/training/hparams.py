"""Automatic hyperparameters from model size, data size, technique and method. Every value the person
sets in the spec's `training` (and in the technique's parameters) wins; the rest is chosen here, the way
an experienced practitioner would start.

Where the values come from: for models of 50M parameters and more, from TRL's own defaults and what the
peers' documentation recommends (each value cites its source beside it); for the built-in tiny model
(1.1M parameters), from measurements: bench/hparams_sweep.py trains the partly trained tiny model on
subsets of the demo data at several learning rates (two seeds where the shared CPU allowed) and scores
every checkpoint from the outside, on the held-out reverse prompts (bench/results/hparams_sweep.json;
the numbers are quoted beside each value). The automatic-path tests (tests/training/test_automatic.py)
launch each technique through the wizard with nothing changed and check that the demo task improves."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from workers.training.spec import Training
from workers.training.techniques import REGISTRY
from workers.training.techniques.base import Technique

LORA_RANKS = (8, 16, 32, 64)  # the ranks vLLM serves
TINY = 50_000_000  # below this many parameters the measured tiny-model values apply

# How long a run is, after OpenAI's automatic epochs for fine-tuning (openai-cookbook,
# examples/Chat_finetuning_data_prep.ipynb: 3 epochs, but at least 100 and at most 25,000 examples seen,
# and between 1 and 25 epochs). LLaMA-Factory's examples also train 3 epochs (examples/train_lora/
# qwen3_lora_sft.yaml, qwen3_lora_dpo.yaml).
TARGET_EPOCHS = 3.0
MIN_EXAMPLES = 100
MAX_EXAMPLES = 25_000
MIN_EPOCHS, MAX_EPOCHS = 1.0, 25.0
# The tiny model gets no cap of its own. One was tried (4,800 examples: 300 steps of 16 on the demo
# file), read off a 692-step run whose held-out sample was at 0.98 after 3,072 examples; but that was in
# the middle of a cosine schedule over 692 steps. A plan of 300 steps ends its schedule there and scored
# 0.83 on the wizard's held-out rows (200 of them; bench/early_stopping.py; 400 steps 0.85, 500 steps 0.94), where
# the three epochs (692 steps) score 0.985, and early stopping ends them at step 490 at 0.965, when the
# held-out sample has scored 100% twice in a row (45.7 s against 58.3 s on 2 cores, partial model of
# build 4: bench/results/early_stopping.json).
# GRPO counts epochs over prompts; each prompt is answered `num_generations` times, and a step holds a
# batch of answers. Larger models: one pass over the prompts. The tiny model: up to two passes in batches of 32
# answers (4 prompts a step) at a LoRA rate of 1e-3 (bench/grpo_plan.py, 200 prompts, seeds 42/7/1; the
# reward's mean over the second half of the steps against the first, and the held-out exact match from
# 0.32): 0.14 → 0.19, 0.17 → 0.27, 0.15 → 0.21, held-out 0.40/0.46/0.38. The plan before it (one pass in
# batches of 16, 2 prompts a step, 3e-4) moved its reward either way (0.13 → 0.18, 0.23 → 0.16,
# 0.17 → 0.20) and held-out 0.40/0.34/0.34: with 2 prompts a step, which words came up outweighed what
# was learnt, and 1e-3 at that batch fell (0.28/0.38, bench/results/hparams_sweep.json).
# On a larger prompt file the tiny model gets one pass too, as long as it sees GRPO_MIN_PROMPTS_TINY
# prompts (the demo's 3,690 prompts: one pass, 922 steps, the answers the plan before sampled).
GRPO_EPOCHS = 1.0
GRPO_EPOCHS_TINY = 2.0
GRPO_MIN_PROMPTS_TINY = 400
GRPO_BATCH_TINY = 32


@dataclass(frozen=True)
class HParams:
    method: str
    max_steps: int
    batch_size: int
    gradient_accumulation: int
    learning_rate: float
    lora_rank: int
    lora_alpha: int
    max_length: int
    save_steps: int
    logging_steps: int
    bf16: bool
    seed: int
    # The epochs that `max_steps` came from (None when the person set the steps).
    epochs: float | None = None
    # GRPO's sampling (RLVR and RLAIF only; None for the other techniques). The technique's own
    # parameters win where the person set them (techniques.rlvr.grpo_config).
    num_generations: int | None = None
    temperature: float | None = None
    kl_beta: float | None = None


def _lora_rank(n_params: int) -> int:
    if n_params < 1_000_000_000:
        return 8 if n_params > 50_000_000 else 16
    if n_params < 3_000_000_000:
        return 16
    return 32 if n_params < 13_000_000_000 else 64


def _technique(name: str) -> Technique:
    if name not in REGISTRY:
        raise ValueError(f"Unknown technique “{name}”: choose one of {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def learning_rate(technique: str, method: str, n_params: int) -> float:
    """The automatic learning rate: the technique declares it by method, for the tiny model and larger ones
    (workers/training/techniques/, with where each value comes from)."""
    tiny, larger = _technique(technique).learning_rates["full" if method == "full" else "lora"]
    return tiny if n_params < TINY else larger


@dataclass(frozen=True)
class Sampling:
    num_generations: int
    temperature: float
    kl_beta: float


def grpo_sampling(n_params: int) -> Sampling:
    """GRPO's automatic sampling. Larger models: TRL's GRPOConfig defaults (trl/trainer/grpo_config.py:
    8 answers a prompt, temperature 1.0, beta 0.0, i.e. no KL term and no reference model; Unsloth's
    advanced RL documentation keeps beta 0.0 too). Tiny (bench/hparams_sweep.py, LoRA at 3e-4, 200
    prompts, 100 steps): 8 answers over 4 (held-out exact match 0.36 → 0.40 against 0.38, seed 42), and
    temperature 0.7 over 1.0 (0.44/0.46 against 0.40/0.44 for seeds 42/7; the reward of the first tenth
    0.18/0.31 against 0.06/0.13: more groups with an answer right, so fewer with nothing to learn from).
    The KL weight stays 0 (not swept)."""
    if n_params < TINY:
        return Sampling(num_generations=8, temperature=0.7, kl_beta=0.0)
    return Sampling(num_generations=8, temperature=1.0, kl_beta=0.0)


def _epochs(n_rows: int, technique: str, n_params: int) -> float:
    """OpenAI's automatic epochs (see TARGET_EPOCHS); early stopping ends them sooner when the held-out
    sample stops rising."""
    if _technique(technique).samples_answers:
        if n_params >= TINY:
            return GRPO_EPOCHS
        return min(GRPO_EPOCHS_TINY, max(GRPO_EPOCHS, GRPO_MIN_PROMPTS_TINY / max(n_rows, 1)))
    rows = max(n_rows, 1)
    if rows * TARGET_EPOCHS < MIN_EXAMPLES:
        return min(MAX_EPOCHS, MIN_EXAMPLES / rows)
    if rows * TARGET_EPOCHS > MAX_EXAMPLES:
        return max(MIN_EPOCHS, MAX_EXAMPLES / rows)
    return TARGET_EPOCHS


def resolve(
    training: Training,
    *,
    technique: str,
    n_params: int,
    n_rows: int,
    token_lengths: list[int],
    context: int,
    bf16_supported: bool,
    params: Any = None,
) -> HParams:
    """The run's hyperparameters. `params` (the technique's parameters dataclass, optional) lets GRPO's
    values that the person set count in the plan: the answers sampled per prompt set the steps."""
    samples = _technique(technique).samples_answers
    grpo_tiny = samples and n_params < TINY
    batch = training.batch_size or (
        GRPO_BATCH_TINY if grpo_tiny else 16 if n_params < TINY else 8 if n_params < 3_000_000_000 else 4
    )
    accumulation = training.gradient_accumulation or max(1, 16 // batch)
    effective = batch * accumulation
    sampling = None
    if samples:
        auto = grpo_sampling(n_params)
        chosen = {k: getattr(params, k, None) for k in ("num_generations", "temperature", "beta")}
        sampling = Sampling(
            num_generations=chosen["num_generations"] or auto.num_generations,
            temperature=auto.temperature if chosen["temperature"] is None else chosen["temperature"],
            kl_beta=auto.kl_beta if chosen["beta"] is None else chosen["beta"],
        )
    epochs = None
    if training.max_steps:
        steps = training.max_steps
    else:
        epochs = training.epochs or _epochs(n_rows, technique, n_params)
        # GRPO's batch holds answers, `num_generations` to a prompt: an epoch is rows × answers.
        per_row = sampling.num_generations if sampling else 1
        steps = max(10, min(5000, math.ceil(n_rows * epochs * per_row / effective)))
    longest = sorted(token_lengths)[int(0.99 * (len(token_lengths) - 1))] if token_lengths else 256
    max_length = training.max_length or min(context, max(64, 32 * math.ceil((longest + 8) / 32)))
    rank = training.lora_rank or _lora_rank(n_params)
    return HParams(
        method=training.method,
        max_steps=steps,
        batch_size=batch,
        gradient_accumulation=accumulation,
        learning_rate=training.learning_rate or learning_rate(technique, training.method, n_params),
        lora_rank=rank,
        lora_alpha=2 * rank,
        max_length=max_length,
        # About ten checkpoints a run, none closer than ten steps apart.
        save_steps=training.save_steps or max(10, steps // 10),
        logging_steps=max(1, min(10, steps // 50)),
        bf16=bf16_supported,
        seed=training.seed,
        epochs=round(epochs, 3) if epochs is not None else None,
        num_generations=sampling.num_generations if sampling else None,
        temperature=sampling.temperature if sampling else None,
        kl_beta=sampling.kl_beta if sampling else None,
    )
