from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FULL_SFT_STEPS = 600


def run_spec(folder: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a spec in this process (no tracking, the reverse task's held-out split); its events."""
    from workers.training import tiny
    from workers.training.events import read_events
    from workers.training.runner import run_and_report

    spec = {"output_dir": str(folder / "out"), "tracking": {"enabled": False},
            "eval_dataset": str(tiny.DEMO / "reverse" / "eval.jsonl"), **spec}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec))
    code = run_and_report(folder / "spec.json")
    events = read_events(folder / "out" / "events.jsonl")
    assert code == 0, events[-1]
    return events


@pytest.fixture(scope="session")
def full_sft(tmp_path_factory, tiny_model) -> tuple[Path, list[dict[str, Any]]]:
    """Full SFT of the base model on the reverse task: asserted on by test_learning, and the stronger
    model that the RLAIF tests' judge serves (one training run for both)."""
    from workers.training import tiny

    folder = tmp_path_factory.mktemp("full-sft")
    events = run_spec(folder, {
        "technique": "sft", "model": str(tiny_model / "base"), "dataset": str(tiny.DEMO / "reverse" / "sft.jsonl"),
        "training": {"method": "full", "max_steps": FULL_SFT_STEPS, "batch_size": 32, "learning_rate": 1e-3,
                     "save_steps": 10_000},
    })  # fmt: skip
    return folder / "out" / "model", events
