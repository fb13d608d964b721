"""Supervised fine-tuning with TRL's SFTTrainer: learn to answer like the examples. Chat `messages` or
`prompt`/`completion` rows; the loss is on the answers only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.training.techniques.base import Format, Synthetic, Technique


@dataclass(frozen=True)
class SFTParams:
    completion_only_loss: bool = field(
        default=True,
        metadata={"help": "Learn from the answers only, not from the prompts (recommended)."},
    )


def build_trainer(ctx: Any) -> Any:
    from trl import SFTConfig, SFTTrainer

    params: SFTParams = ctx.params
    conversational = "messages" in ctx.train_rows[0]
    config = SFTConfig(
        **ctx.trainer_args(),
        max_length=ctx.hparams.max_length,
        # Chat rows mark the assistant's turns with the template's generation markers.
        assistant_only_loss=conversational and params.completion_only_loss,
        completion_only_loss=(not conversational) and params.completion_only_loss,
        packing=False,
    )
    return SFTTrainer(args=config, **ctx.trainer_kwargs())


TECHNIQUE = Technique(
    name="sft",
    short="SFT",
    title="Supervised fine-tuning",
    summary="Teach the model to answer like your examples. Use it first: it needs only good answers.",
    params=SFTParams,
    build=build_trainer,
    formats=(Format(("messages",)), Format(("prompt", "completion"))),
    learning_rates={
        # Tiny: 5e-3 was the best of 1e-3, 2e-3, 5e-3 on 400 rows (6 epochs; held-out exact match 0.36 →
        # 0.62/0.60, 0.68/0.66, 0.70/0.74 for seeds 42/7) and of 2e-3, 5e-3, 1e-2 on 1,000 rows (3 epochs:
        # 0.88/0.90, 0.94/0.88, 0.88/0.86); on the 4,100 demo rows it reached 0.98 at step 192, 1.00 at 240.
        # Larger: 2e-4, Unsloth's LoRA hyperparameters guide
        # (unsloth.ai/docs/get-started/fine-tuning-llms-guide/lora-hyperparameters-guide); LLaMA-Factory's
        # LoRA SFT example (examples/train_lora/qwen3_lora_sft.yaml) uses 1e-4.
        "lora": (5e-3, 2e-4),
        # Tiny: 1e-3 over 3e-4 on 400 rows, 6 epochs (0.36 → 0.74 against 0.62; one seed). Larger: 2e-5,
        # TRL's SFTConfig default (trl/trainer/sft_config.py).
        "full": (1e-3, 2e-5),
    },
    synthetic=Synthetic(
        label="SFT: prompts and ideal answers",
        fields=("prompt", "completion"),
        hint='{"prompt": "what a user asks", "completion": "the ideal answer"}',
    ),
    resilient=("lora", "full"),
)
