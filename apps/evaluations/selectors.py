"""Reads for evaluation reports: the report and its samples from the evaluation job's folder, the
sample browser's filters, and the reward-hacking check that sets the trainer's own signal against the
held-out metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from apps.jobs.models import Job, Kind, Status
from workers.training.techniques import REGISTRY

FILTERS = ("all", "improved", "regressed", "worst")


def evaluation_list_for_project(*, project_id: int) -> QuerySet[Job]:
    return (
        Job.objects.filter(project_id=project_id, kind=Kind.EVALUATION)
        .select_related("evaluates", "created_by")
        .order_by("-created_at", "-id")
    )


def latest_evaluation(job: Job) -> Job | None:
    """The newest evaluation of a training job."""
    return job.evaluations.order_by("-created_at", "-id").first()


def report_for(job: Job) -> dict[str, Any] | None:
    """The evaluation's report (also the partial one of an evaluation that failed part-way), or None."""
    path = job.files.report
    if not job.is_evaluation or not path.exists():
        return None
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except ValueError:
        return None
    return report


def samples_for(job: Job) -> list[dict[str, Any]]:
    path = job.files.samples
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def metric(report: dict[str, Any], key: str | None) -> dict[str, Any] | None:
    return next((m for m in report.get("metrics", []) if m["key"] == key), None)


def candidates(report: dict[str, Any]) -> list[str]:
    return [
        m["label"]
        for m in report.get("models", [])
        if m.get("evaluated") and m["label"] != report.get("baseline")
    ]


def samples_filtered(
    report: dict[str, Any], samples: list[dict[str, Any]], *, vs: str, show: str = "all", query: str = ""
) -> list[dict[str, Any]]:
    """The sample browser's rows: improved or regressed against the baseline on the primary metric, or
    the candidate's worst first (lowest primary score, then highest loss), searched in prompt, reference
    and answers."""
    rows = samples
    if show in ("improved", "regressed"):
        rows = [s for s in rows if s.get("change", {}).get(vs) == show]
    if query:
        needle = query.casefold()
        rows = [
            s
            for s in rows
            if needle in str(s.get("prompt", "")).casefold()
            or needle in str(s.get("reference") or "").casefold()
            or any(
                needle in str((o or {}).get("text") or "").casefold() for o in s.get("outputs", {}).values()
            )
        ]
    if show == "worst":
        primary = report.get("primary")

        def badness(s: dict[str, Any]) -> tuple[float, float]:
            out = s.get("outputs", {}).get(vs) or {}
            score = (out.get("scores") or {}).get(primary)
            return (score if score is not None else 2.0, -(out.get("loss") or 0.0))

        rows = sorted(rows, key=badness)
    return rows


@dataclass(frozen=True)
class RewardHacking:
    """The trainer's signal rose while the held-out primary metric fell."""

    signal: str
    signal_before: float
    signal_after: float
    metric: str
    base: float
    customized: float

    @property
    def message(self) -> str:
        return (
            f"Possible reward hacking: the trainer's {self.signal} rose from {self.signal_before:.2f} to "
            f"{self.signal_after:.2f}, while held-out {self.metric} fell from {self.base:.2f} to {self.customized:.2f}. "
            "The model may have learned to please the reward rather than to do the task: check the regressed samples "
            "before deploying."
        )


def _trend(points: list[dict[str, Any]], key: str) -> tuple[float, float] | None:
    """Mean of the first and of the last tenth of the logged values (at least one point each)."""
    values = [float(p[key]) for p in points if isinstance(p.get(key), int | float)]
    if len(values) < 2:
        return None
    tenth = max(1, len(values) // 10)
    return sum(values[:tenth]) / tenth, sum(values[-tenth:]) / tenth


def reward_hacking(training: Job, report: dict[str, Any] | None) -> RewardHacking | None:
    """Flag the evaluation of an RLVR, RLAIF or DPO job whose trainer signal rose (by 0.05 or more) while
    the primary held-out metric of the customized model fell below the base's (by 0.05 or more, or with
    an interval wholly below zero)."""
    # The trainer's own signal, as its technique declares: GRPO's mean reward, DPO's preference accuracy.
    technique = REGISTRY.get(training.technique)
    signal = technique.signal if technique else None
    if not signal or report is None:
        return None
    trend = _trend(training.metrics or [], signal)
    if trend is None or trend[1] - trend[0] < 0.05:
        return None
    primary = metric(report, report.get("primary"))
    if primary is None:
        return None
    for label in candidates(report):
        delta = primary["deltas"].get(label)
        base, mine = primary["values"].get(report["baseline"]), primary["values"].get(label)
        if delta and base and mine and (delta["mean"] <= -0.05 or delta["high"] < 0):
            return RewardHacking(
                signal, trend[0], trend[1], primary["label"].lower(), base["mean"], mine["mean"]
            )
    return None


def evaluation_state(training: Job) -> dict[str, Any]:
    """What a training job's page shows of its evaluation: the evaluation job, its report's primary
    metric, and any reward-hacking warning."""
    evaluation = latest_evaluation(training)
    report = report_for(evaluation) if evaluation else None
    primary = metric(report, report.get("primary")) if report else None
    return {
        "evaluation": evaluation,
        "report": report,
        "primary": primary,
        "hacking": reward_hacking(training, report)
        if evaluation and evaluation.status == Status.SUCCEEDED
        else None,
    }
