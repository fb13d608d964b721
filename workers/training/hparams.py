"""Automatic hyperparameters from model size, data size and technique. Every value the person sets
in the spec's `training` wins; the rest is chosen here, the way an experienced practitioner would start."""

from __future__ import annotations

import math
from dataclasses import dataclass

from workers.training.spec import Training

LORA_RANKS = (8, 16, 32, 64)  # the ranks vLLM serves


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


def _lora_rank(n_params: int) -> int:
    if n_params < 1_000_000_000:
        return 8 if n_params > 50_000_000 else 16
    if n_params < 3_000_000_000:
        return 16
    return 32 if n_params < 13_000_000_000 else 64


def _learning_rate(technique: str, method: str, n_params: int) -> float:
    tiny = n_params < 50_000_000
    full = {
        "sft": 1e-3 if tiny else 2e-5,
        "dpo": 2e-4 if tiny else 5e-7,
        "rlvr": 3e-4 if tiny else 1e-6,
        "rlaif": 3e-4 if tiny else 1e-6,
    }[technique]
    # Adapters start from zero and move few weights: they take about ten times the step size.
    return full if method == "full" else min(full * 10, 5e-3 if tiny else 2e-4)


def resolve(
    training: Training,
    *,
    technique: str,
    n_params: int,
    n_rows: int,
    token_lengths: list[int],
    context: int,
    bf16_supported: bool,
) -> HParams:
    batch = training.batch_size or (16 if n_params < 50_000_000 else 8 if n_params < 3_000_000_000 else 4)
    accumulation = training.gradient_accumulation or max(1, 16 // batch)
    effective = batch * accumulation
    if training.max_steps:
        steps = training.max_steps
    else:
        epochs = training.epochs or 3.0
        steps = max(10, min(5000, math.ceil(n_rows * epochs / effective)))
    longest = sorted(token_lengths)[int(0.99 * (len(token_lengths) - 1))] if token_lengths else 256
    max_length = training.max_length or min(context, max(64, 32 * math.ceil((longest + 8) / 32)))
    rank = training.lora_rank or _lora_rank(n_params)
    return HParams(
        method=training.method,
        max_steps=steps,
        batch_size=batch,
        gradient_accumulation=accumulation,
        learning_rate=training.learning_rate or _learning_rate(technique, training.method, n_params),
        lora_rank=rank,
        lora_alpha=2 * rank,
        max_length=max_length,
        # About ten checkpoints a run, none closer than ten steps apart.
        save_steps=training.save_steps or max(10, steps // 10),
        logging_steps=max(1, min(10, steps // 50)),
        bf16=bf16_supported,
        seed=training.seed,
    )
