"""The held-out score: ONE function for every before → after that Atelier shows. The trainer's
`finished` event, its `heldout` events during training (on a sample, labelled so), MLflow and the
evaluation report's grader pass rates all come from here: the same rows (select_rows), the same greedy
batched generation (same max_new_tokens, same batch size), the same graders (workers.training.graders,
whose exact_match folds case and runs of white space) and the same bootstrap interval (metrics.summarize).

Before this module the trainer compared strings exactly after strip() on every row of the eval file,
while the report folded case and white space on its first 200 rows: two numbers for one question.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.training import data as data_module
from workers.training import metrics
from workers.training.graders import REGISTRY as GRADERS
from workers.training.graders import missing_option

# What the automatic evaluation uses unless the training spec says otherwise (spec.Training's eval_*).
MAX_ROWS = 200
BATCH_SIZE = 16
# A held-out sample during training: small enough to cost a fraction of a second on the tiny model.
SAMPLE_ROWS = 32
# The bootstrap's seed, the evaluation spec's default: the same rows and seed give the same interval.
BOOTSTRAP_SEED = 0


def select_rows(
    path: Path | str, column_map: dict[str, str] | None = None, max_rows: int = MAX_ROWS,
    data_format: str = "auto",
) -> list[dict[str, Any]]:  # fmt: skip
    """The held-out rows, in file order, at most `max_rows`: any technique's format (converted from the
    file's own, workers.training.formats), as {"prompt": chat, "answer"?: text, ...}. Lines that cannot be
    read or converted are skipped. The trainer and the evaluation both call this."""
    found = data_module.converted(data_module.records(path), data_module.mapping_of(column_map, data_format))
    if not found.file_columns:
        raise data_module.DataError("The eval dataset is empty: it has no rows.")
    rows: list[dict[str, Any]] = []
    for record in found.records:
        if record.row is not None and (row := data_module.eval_row(record.row)) is not None:
            rows.append(row)
            if len(rows) >= max_rows:
                break
    if not rows:
        raise data_module.DataError(
            "No row of the eval dataset has a prompt: it needs “prompt” (text or chat) or “messages” columns; "
            f"it has {', '.join(found.file_columns)}. Map a column to “prompt”."
        )
    return rows


def sample_indices(n_rows: int, size: int = SAMPLE_ROWS, seed: int = 0) -> list[int]:
    """A seeded sample of row indices (in row order) for the checks during training."""
    if n_rows <= size:
        return list(range(n_rows))
    return sorted(random.Random(seed).sample(range(n_rows), size))


def graders_for(technique: str, params: Any) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The graders a job is scored by, as its technique declares (RLVR: its own graders with their
    options; exact match otherwise, which runs where the held-out rows have an answer)."""
    from workers.training.techniques import REGISTRY

    return REGISTRY[technique].graders(params)


def _columns(rows: list[dict[str, Any]]) -> set[str]:
    return set().union(*(r.keys() for r in rows)) if rows else set()


def grader_label(name: str) -> str:
    return GRADERS[name].label if name in GRADERS else name


def grader_problem(name: str, options: dict[str, Any], rows: list[dict[str, Any]]) -> str | None:
    """Why a grader cannot score these rows, in words; None when it can (graders.GraderInfo: the
    reference columns it needs, the options it cannot run without)."""
    present = _columns(rows)
    if name not in GRADERS:
        return f"There is no grader “{name}”; the graders are {', '.join(GRADERS)}."
    label = GRADERS[name].label
    for column in GRADERS[name].needs:
        if column not in present:
            return (
                f"{label} compares each answer with the reference column “{column}”, which the eval "
                f"dataset does not have (its columns: {', '.join(sorted(present - {'prompt'})) or 'only the prompt'}). "
                f"Map a column to “{column}”, or choose a grader that needs no reference."
            )
    if option := missing_option(name, options):
        return f"{label} needs its “{option}” option."
    return None


def first_usable(
    names: list[str], options: dict[str, dict[str, Any]], rows: list[dict[str, Any]]
) -> str | None:
    """The grader that leads: the first one that can score these rows (the report's primary metric)."""
    return next((n for n in names if grader_problem(n, options.get(n, {}), rows) is None), None)


def grade(
    name: str, options: dict[str, Any], rows: list[dict[str, Any]], outputs: list[str | None]
) -> list[float | None]:
    """One grader's score of each row's output (None where it has no output, or no reference the
    grader needs). Raises whatever the grader raises (a user's code or schema may fail in any way)."""
    from workers.training.graders import make

    grader = make(name, **options)
    present = _columns(rows)
    scores: list[float | None] = [None] * len(rows)
    pick = [
        i
        for i, r in enumerate(rows)
        if outputs[i] is not None and all(r.get(c) is not None for c in GRADERS[name].needs)
    ]
    if pick:
        columns = {k: [rows[i].get(k) for i in pick] for k in present if k != "prompt"}
        values = grader([outputs[i] for i in pick], prompts=[rows[i]["prompt"] for i in pick], **columns)
        for i, value in zip(pick, values, strict=True):
            scores[i] = float(value)
    return scores


@dataclass(frozen=True)
class Score:
    """A model's held-out score: the grader's mean over the rows it scored, with its 95% interval."""

    grader: str
    mean: float
    low: float
    high: float
    n: int
    per_row: tuple[float | None, ...]

    @property
    def label(self) -> str:
        return grader_label(self.grader)

    @property
    def interval(self) -> list[float]:
        return [self.low, self.high]


def score_outputs(
    rows: list[dict[str, Any]], outputs: list[str | None], grader: str, options: dict[str, Any]
) -> Score | None:
    scores = grade(grader, options, rows, outputs)
    summary = metrics.summarize(scores, seed=BOOTSTRAP_SEED)
    if summary is None:
        return None
    return Score(grader, summary["mean"], summary["low"], summary["high"], summary["n"], tuple(scores))


def answers(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]], max_new_tokens: int, batch_size: int = BATCH_SIZE
) -> list[str]:
    """Greedy answers to the rows' prompts, in batches of `batch_size` (left padded)."""
    from workers.training.generation import generate

    side = tokenizer.padding_side
    try:
        return generate(
            model,
            tokenizer,
            [r["prompt"] for r in rows],
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
    finally:
        tokenizer.padding_side = side  # a trainer's collator may read it


def score(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    grader: str,
    options: dict[str, Any],
    *,
    max_new_tokens: int,
    batch_size: int = BATCH_SIZE,
) -> Score | None:
    """THE held-out score of a model on rows: greedy batched answers, graded, with a bootstrap interval."""
    outputs: list[str | None] = list(answers(model, tokenizer, rows, max_new_tokens, batch_size))
    return score_outputs(rows, outputs, grader, options)


def load_for_scoring(ref: Any) -> tuple[Any, Any]:
    """A model and tokenizer loaded the way the evaluation loads each candidate (merged, bf16 on a GPU
    that has it, on the GPU when there is one), so the trainer's numbers are the report's."""
    import torch

    from workers.training.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(ref)
    dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
    model = load_model(ref, method="full", dtype=dtype)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, tokenizer


def verdict(before: Score | None, after: Score | None) -> tuple[str | None, str]:
    """better / same / worse: the after score's 95% interval against the starting score."""
    if before is None or after is None:
        return None, "There were no held-out rows to score, so nothing says whether the model improved."
    what = f"{after.label} on {after.n} held-out rows went from {before.mean:.0%} to {after.mean:.0%}"
    span = f"(95% interval {after.low:.0%} to {after.high:.0%})"
    if after.high < before.mean:
        return "worse", f"{what} {span}: worse than its base, beyond the interval."
    if after.low > before.mean:
        return "better", f"{what} {span}: better than its base, beyond the interval."
    return "same", f"{what} {span}: within the interval, so no clear change."
