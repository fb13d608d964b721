"""The training CLI end to end on the tiny model: events, artifacts, cancellation, and every bad input
ending in a `failed` event that says what to change."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from workers.training import tiny
from workers.training.events import read_events
from workers.training.folder import JobFolder
from workers.training.train import run_and_report

ROOT = Path(__file__).resolve().parents[2]
REVERSE = tiny.DEMO / "reverse"


def _spec(tmp_path: Path, model: Path, **overrides: Any) -> Path:
    spec: dict[str, Any] = {
        "technique": "sft",
        "model": str(model),
        "dataset": str(REVERSE / "sft.jsonl"),
        "eval_dataset": str(REVERSE / "eval.jsonl"),
        "output_dir": str(tmp_path / "out"),
        "training": {"method": "full", "max_steps": 12, "save_steps": 5},
        "tracking": {"enabled": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def _failure(tmp_path: Path) -> str:
    events = read_events(JobFolder(tmp_path / "out").events)
    assert events[-1]["event"] == "failed", events[-1]
    return str(events[-1]["message"])


def test_the_cli_trains_and_reports_every_step_as_json_lines(tmp_path, tiny_model):
    spec = _spec(tmp_path, tiny_model / "partial")
    result = subprocess.run(
        [sys.executable, "-m", "workers.training", "run", str(spec)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # nothing but events on stdout
    assert lines == read_events(JobFolder(tmp_path / "out").events)
    kinds = [e["event"] for e in lines]
    assert kinds[:2] == ["started", "configured"] and kinds[-1] == "finished"
    steps = [e for e in lines if e["event"] == "step" and "loss" in e["metrics"]]
    assert [e["step"] for e in steps] == list(range(1, 13))
    assert steps[-1]["eta_seconds"] == 0 and steps[3]["eta_seconds"] > 0
    assert [e["step"] for e in lines if e["event"] == "checkpoint"] == [5, 10, 12]
    finished = lines[-1]
    assert finished["metrics"]["global_step"] == 12
    assert Path(finished["artifacts"]["model"], "model.safetensors").exists()
    partial = json.loads((tiny_model / "partial" / "atelier.json").read_text())
    assert finished["metrics"]["heldout_before"] == partial["reverse_exact_match"]


def test_a_cancel_flag_stops_the_run_between_steps(tmp_path, tiny_model):
    spec = _spec(tmp_path, tiny_model / "partial", training={"max_steps": 50})
    (tmp_path / "out").mkdir()
    JobFolder(tmp_path / "out").cancel.touch()
    assert run_and_report(spec) == 0
    events = read_events(JobFolder(tmp_path / "out").events)
    assert events[-1]["event"] == "finished" and events[-1]["cancelled"] is True
    assert events[-1]["metrics"]["global_step"] == 1


def test_a_dataset_missing_its_columns_fails_with_what_it_needs(tmp_path, tiny_model):
    spec = _spec(tmp_path, tiny_model / "base", technique="sft", dataset=str(REVERSE / "rlvr.jsonl"))
    assert run_and_report(spec) == 1
    assert "needs the columns messages or prompt/completion; this one has answer, prompt" in _failure(
        tmp_path
    )


def test_an_empty_dataset_fails_clearly(tmp_path, tiny_model):
    (tmp_path / "empty.jsonl").write_text("")
    assert run_and_report(_spec(tmp_path, tiny_model / "base", dataset=str(tmp_path / "empty.jsonl"))) == 1
    assert _failure(tmp_path) == "empty.jsonl is empty: it has no rows."


def test_rows_longer_than_the_maximum_length_are_named(tmp_path, tiny_model):
    spec = _spec(tmp_path, tiny_model / "base", training={"max_length": 30})
    assert run_and_report(spec) == 1
    message = _failure(tmp_path)
    assert "rows are longer than the maximum length of 30 tokens (rows " in message
    assert "Raise the maximum length or shorten those rows." in message


def test_a_far_too_high_learning_rate_fails_with_advice_instead_of_training_on_nan(tmp_path, tiny_model):
    spec = _spec(tmp_path, tiny_model / "base", training={"learning_rate": 1e8, "max_steps": 20})
    assert run_and_report(spec) == 1
    assert "training diverged. Lower the learning rate" in _failure(tmp_path)


def test_a_model_path_that_does_not_exist_is_named(tmp_path):
    assert run_and_report(_spec(tmp_path, tmp_path / "no-such-model")) == 1
    assert _failure(tmp_path) == f"No model folder at {tmp_path / 'no-such-model'}."


def test_a_malformed_spec_is_reported_as_a_failed_event(tmp_path, capsys):
    path = tmp_path / "spec.json"
    path.write_text('{"technique": "sft"')
    assert run_and_report(path) == 2
    event = json.loads(capsys.readouterr().out)
    assert event["event"] == "failed" and "is not valid JSON" in event["message"]


def test_a_stop_requested_in_an_earlier_run_does_not_stop_the_next(tmp_path, tiny_model):
    from workers.training import train

    train.StopRequest.requested = True  # as a SIGTERM to an earlier run in this process left it
    assert run_and_report(_spec(tmp_path, tiny_model / "partial", training={"max_steps": 3})) == 0
    assert read_events(JobFolder(tmp_path / "out").events)[-1]["event"] == "finished"
