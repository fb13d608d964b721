"""Resume after a crash: a run killed with SIGKILL continues from its newest complete checkpoint (a
half-written one is skipped) and ends where an uninterrupted run ends; SIGTERM checkpoints and exits."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness import mlflow_get, mlflow_runs
from workers.training import tiny
from workers.training.checkpoints import is_complete, newest_complete, step_of
from workers.training.events import read_events
from workers.training.folder import Exit, JobFolder

ROOT = Path(__file__).resolve().parents[2]
STEPS = 60


def _spec(folder: Path, model: Path, tracking: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "technique": "sft",
        "model": str(model),
        "dataset": str(tiny.DEMO / "reverse" / "sft.jsonl"),
        "output_dir": str(folder / "out"),
        "training": {"method": "full", "max_steps": STEPS, "save_steps": 10},
        "tracking": tracking or {"enabled": False},
    }
    (folder / "spec.json").write_text(json.dumps(spec))
    return folder / "spec.json"


def _start(spec: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "workers.training", "run", str(spec)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def _wait_for(
    events_file: Path, predicate: Callable[[dict], bool], proc: subprocess.Popen[str], timeout: float = 120
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in read_events(events_file) if events_file.exists() else []:
            if predicate(event):
                return event
        assert proc.poll() is None, "the run ended before the awaited event"
        time.sleep(0.05)
    raise AssertionError("timed out")


def _losses(out: Path) -> dict[int, float]:
    return {e["step"]: e["metrics"]["loss"] for e in read_events(JobFolder(out).events)
            if e["event"] == "step" and "loss" in e["metrics"]}  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model) -> Path:
    folder = tmp_path_factory.mktemp("whole")
    assert _start(_spec(folder, tiny_model / "partial")).wait(300) == 0
    return folder / "out"


def test_a_killed_run_resumes_from_its_newest_complete_checkpoint_and_ends_like_an_uninterrupted_one(
    tmp_path, tiny_model, uninterrupted
):
    spec = _spec(tmp_path, tiny_model / "partial")
    out = tmp_path / "out"
    proc = _start(spec)
    _wait_for(JobFolder(out).events, lambda e: e["event"] == "checkpoint" and e["step"] >= 20, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    complete = newest_complete(JobFolder(out).checkpoints)
    complete_step = step_of(complete) if complete else None
    assert complete_step is not None
    # What a kill during a save leaves: a higher-numbered folder without its state.
    half = JobFolder(out).checkpoints / f"checkpoint-{complete_step + 5}"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"\0" * 10)
    assert not is_complete(half)

    assert _start(spec).wait(300) == 0
    events = read_events(JobFolder(out).events)
    resumed = next(e for e in events if e["event"] == "resumed")
    assert resumed["step"] == complete_step
    assert events[-1]["event"] == "finished" and events[-1]["metrics"]["global_step"] == STEPS
    whole, pieced = _losses(uninterrupted), _losses(out)
    assert pieced[STEPS] == pytest.approx(whole[STEPS], rel=0.05)


def test_sigterm_checkpoints_the_current_step_and_exits_to_be_resumed(tmp_path, tiny_model):
    spec = _spec(tmp_path, tiny_model / "partial")
    out = tmp_path / "out"
    proc = _start(spec)
    _wait_for(JobFolder(out).events, lambda e: e["event"] == "step" and e["step"] >= 3, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == Exit.INTERRUPTED
    stop = read_events(JobFolder(out).events)[-1]
    assert stop["event"] == "interrupted" and stop["step"] > 0
    saved = newest_complete(JobFolder(out).checkpoints)
    assert saved is not None and saved.name == f"checkpoint-{stop['step']}"


@pytest.mark.services
def test_a_resumed_run_continues_its_mlflow_run(tmp_path, tiny_model, mlflow_service):
    experiment = f"resume-{tmp_path.name}"
    spec = _spec(tmp_path, tiny_model / "partial", {"tracking_uri": mlflow_service, "experiment": experiment})
    out = tmp_path / "out"
    proc = _start(spec)
    _wait_for(JobFolder(out).events, lambda e: e["event"] == "checkpoint" and e["step"] >= 20, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first_run = JobFolder(out).run_id.read_text().strip()

    assert _start(spec).wait(300) == 0
    finished = read_events(JobFolder(out).events)[-1]
    assert finished["event"] == "finished" and finished["mlflow"]["run_id"] == first_run

    runs = mlflow_runs(mlflow_service, experiment)
    assert [r["info"]["run_id"] for r in runs] == [first_run]
    assert runs[0]["info"]["status"] == "FINISHED"
    steps = [
        m["step"]
        for m in mlflow_get(mlflow_service, "metrics/get-history", run_id=first_run, metric_key="loss")[
            "metrics"
        ]
    ]
    # Steps logged before the kill and after the resume land in the one run, up to the last step, and
    # the steps done twice (between the checkpoint and the kill) have one point each.
    assert max(steps) == STEPS and min(steps) < 20
    assert len(steps) == len(set(steps)), sorted(steps)
