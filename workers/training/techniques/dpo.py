"""Direct preference optimization with TRL's DPOTrainer: prefer the chosen answer over the rejected one.
`prompt`/`chosen`/`rejected` rows. The optional SFT term keeps the task accuracy from falling while the
preference accuracy rises (measured here: without it, exact match fell from 0.20 to 0.12)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.training.techniques.base import Format, Synthetic, Technique, beta_field


@dataclass(frozen=True)
class DPOParams:
    beta: float = beta_field()
    sft_weight: float = field(
        default=1.0,
        metadata={"help": "Weight of a supervised term on the chosen answers (0 turns it off); it keeps task accuracy.",
                  "min": 0.0, "max": 10.0},
    )  # fmt: skip


def build_trainer(ctx: Any) -> Any:
    from trl import DPOConfig, DPOTrainer

    params: DPOParams = ctx.params
    loss: dict[str, Any] = (
        {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, params.sft_weight]}
        if params.sft_weight
        else {}
    )
    config = DPOConfig(**ctx.trainer_args(), beta=params.beta, max_length=ctx.hparams.max_length, **loss)
    return DPOTrainer(args=config, **ctx.trainer_kwargs())


TECHNIQUE = Technique(
    name="dpo",
    short="DPO",
    title="Direct preference optimization",
    summary="Teach the model which of two answers is better. Use it after SFT, with pairs of good and bad answers.",
    params=DPOParams,
    build=build_trainer,
    formats=(Format(("prompt", "chosen", "rejected")),),
    learning_rates={
        # Tiny: 5e-3 was the best of 5e-4, 2e-3, 5e-3 on 400 pairs, 3 epochs, both seeds (held-out exact
        # match 0.36 → 0.54/0.54, 0.74/0.70, 0.76/0.78; near-miss preference accuracy 0.94 → 0.96/0.98,
        # 1.00/0.98, 1.00/1.00; TRL's SFT term on the chosen answers keeps the task). Larger: 5e-6,
        # LLaMA-Factory's LoRA DPO example (examples/train_lora/qwen3_lora_dpo.yaml).
        "lora": (5e-3, 5e-6),
        # Tiny: 2e-4 over 5e-5 on 400 pairs, 3 epochs (exact match 0.36 → 0.72 against 0.46, preference
        # accuracy 0.94 → 1.00 against 0.96; one seed). Larger: 1e-6, TRL's DPOConfig default
        # (trl/trainer/dpo_config.py).
        "full": (2e-4, 1e-6),
    },
    synthetic=Synthetic(
        label="DPO: prompts with a better and a worse answer",
        fields=("prompt", "chosen"),
        hint='{"prompt": "what a user asks", "chosen": "the ideal answer"}',
        columns=("prompt", "chosen", "rejected"),
        needs_worse=True,
        rows=lambda example, worse: [{**example, "rejected": worse}],
    ),
    sequences_per_row=2,  # the chosen and the rejected answer
    reference_copy=True,
    signal="rewards/accuracies",  # how often the chosen answer beats the rejected one
)
