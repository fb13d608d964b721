"""Try the rewards before launch: the model answers a few rows (greedy), and the RLVR graders or the
RLAIF judge score each answer, with the reasons they logged and the judge's reasoning beside its score.
What the wizard shows beside its "Try" button, so a person sees a grader's verdicts (and a judge that
does not answer, or why it passed an answer) before paying for a run."""

from __future__ import annotations

import logging
from typing import Any

from workers.training import data as data_module
from workers.training.spec import JobSpec


class _Notes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _scorers(spec: JobSpec) -> dict[str, Any]:
    """The rewards the technique declares for a try (RLVR's graders, RLAIF's judge)."""
    from workers.training.techniques import REGISTRY, make_params

    technique = REGISTRY[spec.technique]
    if technique.scorers is None:
        tried = " and ".join(t.short for t in REGISTRY.values() if t.scorers)
        raise ValueError(f"Only {tried} have rewards to try.")
    return technique.scorers(make_params(technique, spec.params))


def try_rewards(spec: JobSpec, rows: int = 4) -> list[dict[str, Any]]:
    from workers.training.generation import generate
    from workers.training.graders import text
    from workers.training.models import load_model, load_tokenizer

    scorers = _scorers(spec)
    sample = data_module.load(
        spec.dataset, spec.technique, spec.column_map, drop_bad=True, data_format=spec.data_format
    )[:rows]
    model = load_model(spec.model, method="full")
    tokenizer = load_tokenizer(spec.model)
    prompts = [
        p if isinstance(p, list) else [{"role": "user", "content": str(p)}]
        for p in (r["prompt"] for r in sample)
    ]
    completions = generate(
        model, tokenizer, prompts, max_new_tokens=int(spec.params.get("max_completion_length", 16))
    )
    columns = {key: [row.get(key) for row in sample] for key in sample[0] if key != "prompt"}
    notes = _Notes()
    loggers = [logging.getLogger("atelier.graders"), logging.getLogger("atelier.judge")]
    results: list[dict[str, Any]] = [{"prompt": text(p), "completion": c, "reference": r.get("answer"), "scores": {}, "notes": []}
               for p, c, r in zip(prompts, completions, sample, strict=True)]  # fmt: skip
    for logger in loggers:
        logger.addHandler(notes)
    try:
        for name, scorer in scorers.items():
            for i, result in enumerate(results):
                notes.messages = []
                reasons = getattr(scorer, "reasons", None)
                if reasons:
                    reasons.clear()
                one = {key: [values[i]] for key, values in columns.items()}
                result["scores"][name] = float(
                    scorer(prompts=[prompts[i]], completions=[completions[i]], **one)[0]
                )
                result["notes"] += [f"{name}: {m}" for m in [*notes.messages, *(reasons or [])] if m]
    finally:
        for logger in loggers:
            logger.removeHandler(notes)
    return results
