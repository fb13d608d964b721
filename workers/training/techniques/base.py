"""What a technique is, for every layer: the descriptor each technique module declares as `TECHNIQUE`.

The web app (the wizard's cards and forms, the Data step's checks, Generate data, the evaluation's
graders, the reward-hacking check) and the training processes (validation, automatic settings, the
estimate, the trainer) read a technique's facts from here and nowhere else, so a new technique is one
module plus one line in `REGISTRY`. Light: no torch, TRL or Django; the trainer is built by a function
that imports TRL when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# What a column may hold. "text": non-empty text or a chat (a list of {role, content}); "chat": a chat
# whose last turn is the assistant's answer; "label": a thumbs-up or down (true/false, 1/0, yes/no, as
# JSON booleans or as CSV text).
TEXT, CHAT, LABEL = "text", "chat", "label"
YES = ("true", "1", "yes", "y", "good", "👍")
NO = ("false", "0", "no", "n", "bad", "👎")


def label_value(value: Any) -> bool | None:
    """A label cell as a boolean, or None when it is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in YES + NO:
        return value.strip().lower() in YES
    return None


@dataclass(frozen=True)
class Format:
    """One accepted shape of a technique's rows: the columns it needs and what each holds (TEXT unless
    named in `kinds`)."""

    columns: tuple[str, ...]
    kinds: dict[str, str] = field(default_factory=dict)

    def kind(self, column: str) -> str:
        return self.kinds.get(column, CHAT if column == "messages" else TEXT)


@dataclass(frozen=True)
class Synthetic:
    """What Generate data writes for a technique. The teacher answers in `fields`; `rows` turns each of
    its examples into the dataset's rows, with a worse answer where `needs_worse` (from a weaker model or
    the chosen answer degraded)."""

    label: str  # the choice on the Generate data form
    fields: tuple[str, ...]  # what the teacher writes for each example
    hint: str  # one example of them, as JSON, in the teacher's instructions
    columns: tuple[str, ...] = ()  # the rows' columns (default: `fields`)
    needs_worse: bool = False
    rows: Callable[[dict[str, str], str | None], list[dict[str, Any]]] | None = None

    def make_rows(self, example: dict[str, str], worse: str | None) -> list[dict[str, Any]]:
        return self.rows(example, worse) if self.rows else [dict(example)]

    @property
    def row_columns(self) -> tuple[str, ...]:
        return self.columns or self.fields


def beta_field(default: float = 0.1) -> Any:
    """The preference techniques' pull towards the starting model (DPO's and KTO's β), one field for both."""
    return field(
        default=default,
        metadata={
            "help": "How far the model may move from where it started: lower moves further.",
            "min": 0.001,
            "max": 5.0,
        },
    )


def exact_match(params: Any) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Held-out scoring by exact match against the rows' answers (the default)."""
    return ["exact_match"], {}


@dataclass(frozen=True)
class Technique:
    name: str  # the key in REGISTRY and in a job's spec
    short: str  # "SFT": badges, filters, job names
    title: str
    summary: str  # one sentence for its card: what it does and when to use it
    params: type  # the parameters dataclass: the wizard generates its form from the fields' metadata
    build: Callable[..., Any]  # (the run's context) → a TRL trainer
    formats: tuple[Format, ...]  # accepted row shapes, the first that the data has wins
    # Automatic learning rate by method ("lora", which covers QLoRA, and "full"): (the tiny model's,
    # larger models'). Where each comes from is written beside it in the technique's module.
    learning_rates: dict[str, tuple[float, float]]
    synthetic: Synthetic
    # GRPO-style: each row is a prompt answered `num_generations` times, and a batch holds answers
    # (automatic sampling, epochs over prompts, the estimate's sequences).
    samples_answers: bool = False
    sequences_per_row: int = 1  # sequences one row puts through the model in a step (DPO: two answers)
    reference_copy: bool = False  # full fine-tuning keeps a frozen copy of the model as its reference
    # Held-out graders of a job (the trainer's before → after and the automatic evaluation).
    graders: Callable[[Any], tuple[list[str], dict[str, dict[str, Any]]]] = exact_match
    judged: bool = False  # rewarded by a judge: the evaluation asks the job's judge too
    # The rewards the Technique step's "Try" scores a few answers with, by name (None: nothing to try).
    scorers: Callable[[Any], dict[str, Any]] | None = None
    signal: str | None = None  # the trainer's own metric that the reward-hacking check sets against held-out
    resilient: tuple[str, ...] = ()  # methods with a checkpointless (torchft) loop
    # Which rows can be held out as references: a row of the technique's format → a held-out row, or
    # None (default: workers.training.data.eval_row).
    heldout_row: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None

    def heldout(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """A row of this technique's format as a held-out row ({"prompt", "answer"?, ...}), or None."""
        from workers.training.data import eval_row  # data.py reads this module's column kinds

        return (self.heldout_row or eval_row)(row)

    def columns_wanted(self) -> str:
        return " or ".join("/".join(f.columns) for f in self.formats)
