"""Numbers for evaluation reports: reference-based text metrics from maintained libraries (ROUGE-L by
Google's rouge-score, BLEU by sacrebleu), bootstrap confidence intervals, and the combination of a
pairwise judge's two verdicts (each pair judged in both orders, which cancels a judge's position bias)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95


def rouge_l(outputs: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F1 of each output against its reference."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [scorer.score(str(r), str(o))["rougeL"].fmeasure for o, r in zip(outputs, references, strict=True)]


def bleu(outputs: Sequence[str], references: Sequence[str]) -> list[float]:
    """Sentence BLEU (0 to 1) of each output against its reference, with sacrebleu's default smoothing."""
    from sacrebleu.metrics import BLEU

    metric = BLEU(effective_order=True)
    return [  # sacrebleu's 100 can come back as 100.00000000000001
        min(1.0, metric.sentence_score(str(o), [str(r)]).score / 100)
        for o, r in zip(outputs, references, strict=True)
    ]


def _interval(values: Any, rng: Any) -> tuple[float, float]:
    import numpy as np

    n = len(values)
    index = rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    means = values[index].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def summarize(scores: Sequence[float | None], seed: int = 0) -> dict[str, Any] | None:
    """Mean of the scores that exist, with a 95% percentile-bootstrap interval; None when there are none."""
    import numpy as np

    values = np.array([s for s in scores if s is not None and math.isfinite(s)], dtype=float)
    if len(values) == 0:
        return None
    low, high = _interval(values, np.random.default_rng(seed))
    return {"mean": float(values.mean()), "low": low, "high": high, "n": len(values)}


def paired_delta(
    baseline: Sequence[float | None], candidate: Sequence[float | None], seed: int = 0
) -> dict[str, Any] | None:
    """Candidate minus baseline over the rows both were scored on, resampling rows (a paired bootstrap),
    so that the interval reflects the difference and not each model's spread."""
    import numpy as np

    pairs = [
        (b, c)
        for b, c in zip(baseline, candidate, strict=True)
        if b is not None and c is not None and math.isfinite(b) and math.isfinite(c)
    ]
    if not pairs:
        return None
    differences = np.array([c - b for b, c in pairs], dtype=float)
    low, high = _interval(differences, np.random.default_rng(seed))
    return {"mean": float(differences.mean()), "low": low, "high": high, "n": len(pairs)}


# Pairwise judging ---------------------------------------------------------------------------------------

OUTCOME_SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def combine_orders(first: str | None, second: str | None) -> tuple[str | None, bool]:
    """The candidate's outcome from two verdicts: `first` judged (A=baseline, B=candidate), `second`
    judged (A=candidate, B=baseline); each "A", "B", "tie" or None (no usable answer). Both orders
    agreeing give that outcome; disagreeing orders give a tie (the preference followed the position, not
    the answer). Returns (outcome or None when either judgement is missing, whether the orders disagreed)."""
    if first is None or second is None:
        return None, False
    one = {"B": "win", "A": "loss", "tie": "tie"}[first]
    two = {"A": "win", "B": "loss", "tie": "tie"}[second]
    if one == two:
        return one, False
    return "tie", True


def pairwise_summary(
    outcomes: Sequence[str | None], disagreements: Sequence[bool], seed: int = 0
) -> dict[str, Any]:
    """Win, tie and loss shares over the judged rows (they add up to 100%), the win rate (a tie counts
    half) with its interval, how often the two orders disagreed, and how many rows went unjudged."""
    judged = [o for o in outcomes if o is not None]
    n = len(judged)
    share = {k: (judged.count(k) / n if n else 0.0) for k in ("win", "tie", "loss")}
    return {
        **share,
        "judged": n,
        "unjudged": len(outcomes) - n,
        "disagreement": (sum(bool(d) for d in disagreements) / n) if n else 0.0,
        "win_rate": summarize([OUTCOME_SCORE[o] for o in judged], seed=seed),
    }
