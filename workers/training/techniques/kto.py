"""Kahneman-Tversky optimization with TRL's KTOTrainer: learn from answers marked good or bad one at a
time, with no pairs: a prompt, a completion and a thumbs-up or down, which is what product feedback logs
hold. `prompt`/`completion`/`label` rows. Each batch should hold both kinds: the rows are shuffled once
(seeded), as TRL's sequential sampler keeps their order, and the two kinds are weighted so that they
count about alike however many of each there are (the KTO paper's advice: λD·nD / λU·nU between 1 and
4/3; `weights`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.training.techniques.base import LABEL, Format, Synthetic, Technique, beta_field, label_value


@dataclass(frozen=True)
class KTOParams:
    beta: float = beta_field()
    desirable_weight: float | None = field(
        default=None,
        metadata={"help": "Weight of the thumbs-up answers. Blank: automatic, from how many there are of each.",
                  "min": 0.01, "max": 100.0},
    )  # fmt: skip
    undesirable_weight: float | None = field(
        default=None,
        metadata={"help": "Weight of the thumbs-down answers. Blank: automatic.", "min": 0.01, "max": 100.0},
    )


def weights(params: KTOParams, rows: list[dict[str, Any]]) -> tuple[float, float]:
    """(thumbs-up weight, thumbs-down weight): the person's where set; else chosen so that
    λD·nD / λU·nU = 4/3, the upper end of the KTO paper's range, leaning to the thumbs-up answers. On the
    reverse task's pairs (200 rows, LoRA at 1e-3) 1:1 weights lowered the held-out right answers'
    log-probability (-11.5 → -11.55; on 800 rows -12.7): a thumbs-down near miss shares most tokens with
    the right answer, and pushing it down pulled the right one with it. At 4/3 it rose to -6.5 (800
    rows: -4.4)."""
    good = sum(1 for r in rows if label_value(r.get("label")))
    bad = len(rows) - good
    if params.desirable_weight or params.undesirable_weight or not good or not bad:
        return params.desirable_weight or 1.0, params.undesirable_weight or 1.0
    return max(1.0, 4 / 3 * bad / good), max(1.0, 3 / 4 * good / bad)


def build_trainer(ctx: Any) -> Any:
    from trl import KTOConfig, KTOTrainer

    params: KTOParams = ctx.params
    desirable, undesirable = weights(params, ctx.train_rows)
    config = KTOConfig(
        **ctx.trainer_args(),
        beta=params.beta,
        desirable_weight=desirable,
        undesirable_weight=undesirable,
        max_length=ctx.hparams.max_length,
    )
    kwargs = ctx.trainer_kwargs()
    kwargs["train_dataset"] = kwargs["train_dataset"].shuffle(seed=ctx.hparams.seed)
    return KTOTrainer(args=config, **kwargs)


def heldout_row(row: dict[str, Any]) -> dict[str, Any] | None:
    """Only a thumbs-up answer is a reference to score against."""
    from workers.training.data import eval_row

    return eval_row(row) if label_value(row.get("label")) else None


TECHNIQUE = Technique(
    name="kto",
    short="KTO",
    title="Kahneman-Tversky optimization",
    summary="Learn from answers marked good or bad one at a time (thumbs up or down), as feedback logs hold them: no pairs needed.",
    params=KTOParams,
    build=build_trainer,
    formats=(Format(("prompt", "completion", "label"), kinds={"label": LABEL}),),
    learning_rates={
        # Tiny, LoRA: 5e-4 on the reverse task's pairs split into thumbs-up and thumbs-down rows (the
        # automatic-path test, tests/training/test_automatic.py; 200 rows, 38 steps): held-out right
        # answers' log-probability -13.8 → -9.9, exact match 36% → 38% (3e-4: -9.9, 38%). 1e-3 was chosen
        # first (36% → 38% once) but fell to 28% when the same run did its sums on one thread instead of
        # two (the test run's setting): too close to the edge. 2e-3 collapsed (36% → 4%), 5e-3 too.
        # Tiny, full: not measured; DPO's measured rate scaled as the LoRA rates are (1e-3 against DPO's
        # 5e-3). Larger: DPO's starting points (KTO optimises the same implicit reward; TRL's KTOConfig
        # default for full fine-tuning is 1e-6).
        "lora": (5e-4, 5e-6),
        "full": (4e-5, 1e-6),
    },
    synthetic=Synthetic(
        label="KTO: answers marked good or bad",
        fields=("prompt", "chosen"),
        hint='{"prompt": "what a user asks", "chosen": "the ideal answer"}',
        columns=("prompt", "completion", "label"),
        needs_worse=True,
        rows=lambda example, worse: [
            {"prompt": example["prompt"], "completion": example["chosen"], "label": True},
            {"prompt": example["prompt"], "completion": worse, "label": False},
        ],
    ),
    sequences_per_row=2,  # each batch also runs its mismatched pairs (KTO's KL estimate)
    reference_copy=True,
    signal="rewards/margins",
    heldout_row=heldout_row,
)
