"""Supervised fine-tuning with TRL's SFTTrainer: learn to answer like the examples. Chat `messages` or
`prompt`/`completion` rows; the loss is on the answers only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUMMARY = "Teach the model to answer like your examples. Use it first: it needs only good answers."


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
