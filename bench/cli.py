"""What the benchmarks share: one job spec run through `python -m workers.training run`, as a worker runs
it, timed from the outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from workers.training.folder import JobFolder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workers.training.events import read_events  # noqa: E402


def run_spec(spec: dict[str, Any], folder: Path, name: str) -> tuple[list[dict[str, Any]], float]:
    """The run's events and its process's wall time in seconds (start-up included)."""
    path = folder / f"spec-{name}.json"
    path.write_text(json.dumps(spec))
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "workers.training", "run", str(path)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "2"})  # fmt: skip
    wall = time.monotonic() - began
    return read_events(JobFolder(Path(spec["output_dir"])).events), wall
