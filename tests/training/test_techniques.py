"""DPO and RLVR on the tiny model through the CLI's runner: what each trainer reports, and for DPO that
learning happened (preference accuracy up, margins growing, task accuracy kept)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workers.training import tiny
from workers.training.events import read_events
from workers.training.folder import JobFolder
from workers.training.train import run_and_report

REVERSE = tiny.DEMO / "reverse"


def _run(tmp_path: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    spec = {"output_dir": str(tmp_path / "out"), "tracking": {"enabled": False}, **spec}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert run_and_report(tmp_path / "spec.json") == 0, read_events(JobFolder(tmp_path / "out").events)[-1]
    return read_events(JobFolder(tmp_path / "out").events)


def _series(events: list[dict[str, Any]], key: str) -> list[float]:
    return [e["metrics"][key] for e in events if e["event"] == "step" and key in e["metrics"]]


def test_dpo_learns_the_preferences_and_keeps_task_accuracy(tmp_path, tiny_model):
    events = _run(tmp_path, {
        "technique": "dpo", "model": str(tiny_model / "partial"),
        "dataset": str(REVERSE / "dpo.jsonl"), "eval_dataset": str(REVERSE / "eval.jsonl"),
        # Every one of the 40 steps: this test follows the trainer's own numbers (early stopping is
        # tested in test_convergence.py).
        "training": {"method": "full", "max_steps": 40, "early_stopping": False},
    })  # fmt: skip
    accuracy, margins = _series(events, "rewards/accuracies"), _series(events, "rewards/margins")
    assert len(accuracy) == 40
    assert sum(accuracy[-10:]) / 10 >= 0.9
    assert sum(margins[-10:]) / 10 > 2 * sum(margins[:10]) / 10
    metrics = events[-1]["metrics"]
    assert metrics["heldout_after"] >= metrics["heldout_before"]


def test_rlvr_rewards_each_sampled_answer_with_every_grader(tmp_path, tiny_model):
    events = _run(tmp_path, {
        "technique": "rlvr", "model": str(tiny_model / "partial"),
        "dataset": str(REVERSE / "rlvr.jsonl"),
        "params": {"graders": ["exact_match", "regex"], "grader_options": {"regex": {"pattern": "[a-z]( [a-z])*"}},
                   "num_generations": 4, "max_completion_length": 16},
        "training": {"method": "lora", "max_steps": 6},
    })  # fmt: skip
    exact, pattern = _series(events, "rewards/exact_match/mean"), _series(events, "rewards/regex/mean")
    assert len(exact) == len(pattern) == 6
    # The partly trained model is right on some answers and nearly always answers in spaced letters.
    assert 0 < sum(exact) / 6 < 1
    assert sum(pattern) / 6 > sum(exact) / 6
    assert events[-1]["event"] == "finished" and "adapter" in events[-1]["artifacts"]


def test_an_unknown_grader_is_refused_before_training(tmp_path, tiny_model):
    spec = {
        "technique": "rlvr", "model": str(tiny_model / "partial"), "dataset": str(REVERSE / "rlvr.jsonl"),
        "params": {"graders": ["bleu"]}, "output_dir": str(tmp_path / "out"), "tracking": {"enabled": False},
    }  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert run_and_report(tmp_path / "spec.json") == 1
    assert (
        "graders may only hold exact_match" in read_events(JobFolder(tmp_path / "out").events)[-1]["message"]
    )
