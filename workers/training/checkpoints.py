"""Choosing the checkpoint to resume from. Transformers' `resume_from_checkpoint=True` takes the
highest-numbered folder even when a killed process left it half written; this takes the newest one
that is complete."""

from __future__ import annotations

import json
import re
from pathlib import Path

WEIGHTS = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json")
REQUIRED = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


NAME = re.compile(r"checkpoint-(\d+)")


def step_of(folder: Path) -> int | None:
    """The global step a checkpoint folder is named for, or None for any other folder."""
    match = NAME.fullmatch(folder.name)
    return int(match.group(1)) if match else None


def is_complete(folder: Path) -> bool:
    step = step_of(folder)
    if step is None or not folder.is_dir():
        return False
    if not all((folder / name).is_file() and (folder / name).stat().st_size > 0 for name in REQUIRED):
        return False
    if not any((folder / name).is_file() for name in WEIGHTS):
        return False
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(state.get("global_step") == step)


def newest_complete(checkpoints: Path) -> Path | None:
    if not checkpoints.is_dir():
        return None
    steps = {p: step for p in checkpoints.iterdir() if (step := step_of(p)) is not None}
    candidates = sorted(steps, key=steps.__getitem__, reverse=True)
    return next((p for p in candidates if is_complete(p)), None)
