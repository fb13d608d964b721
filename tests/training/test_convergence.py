"""Convergence, one held-out score and guardrails, on the tiny model really training.

- The trainer's before → after is the evaluation report's base → customized, exactly (one function,
  workers.training.heldout, on the same rows, answer length and batches).
- A run that reaches 100% on its held-out sample stops there; the result is the best checkpoint.
- GRPO at a far too high learning rate (1e-1): no reward is earned, guardrails say so while it happens,
  the run stops early and ends as worse than its base.
- A run whose reward is 0 for the first 20% of its steps stops with that explanation.
- A run killed after some held-out checks and resumed ends with the same best checkpoint and curve.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import run_spec
from workers.training import tiny
from workers.training.events import read_events
from workers.training.folder import JobFolder

ROOT = Path(__file__).resolve().parents[2]
REVERSE = tiny.DEMO / "reverse"


def _events_of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def test_the_trainers_before_and_after_are_the_evaluation_reports_numbers_exactly(tmp_path, tiny_model):
    from workers.training.evaluation import evaluate_and_report

    events = run_spec(tmp_path / "train", {
        "technique": "sft", "model": str(tiny_model / "partial"), "dataset": str(REVERSE / "sft.jsonl"),
        "training": {"method": "lora", "max_steps": 30, "save_steps": 1000, "early_stopping": False},
    })  # fmt: skip
    finished = events[-1]
    metrics = finished["metrics"]
    assert metrics["heldout_grader"] == "Exact match" and metrics["heldout_rows"] == 50
    assert metrics["best_step"] is None and metrics["global_step"] == 30  # early stopping off: the last
    # The evaluation spec the app writes for this job (apps.evaluations.services.spec_for_job): the
    # training spec's held-out settings, whose defaults are spec.Training's.
    spec = {"kind": "evaluation", "dataset": str(REVERSE / "eval.jsonl"), "output_dir": str(tmp_path / "eval"),
            "models": [{"label": "base", "model": str(tiny_model / "partial")},
                       {"label": "customized", "model": finished["artifacts"]["adapter"]}],
            "graders": ["exact_match"], "text_metrics": False, "loss": False,
            "max_rows": 200, "max_new_tokens": 24, "batch_size": 16}  # fmt: skip
    (tmp_path / "eval.json").write_text(json.dumps(spec))
    assert evaluate_and_report(tmp_path / "eval.json") == 0
    report = json.loads(JobFolder(tmp_path / "eval").report.read_text())
    em = next(m for m in report["metrics"] if m["key"] == "exact_match")
    base, customized = em["values"]["base"], em["values"]["customized"]
    assert (base["mean"], customized["mean"]) == (metrics["heldout_before"], metrics["heldout_after"])
    assert [base["low"], base["high"]] == metrics["heldout_interval_before"]
    assert [customized["low"], customized["high"]] == metrics["heldout_interval_after"]
    assert base["n"] == customized["n"] == metrics["heldout_rows"]
    assert metrics["verdict"] in ("better", "same", "worse") and metrics["verdict_reason"]


def _assert_result_is_the_best_checkpoint(out: Path) -> None:
    """The saved model is the best checkpoint's weights, byte for byte."""
    assert (out / "model" / "model.safetensors").read_bytes() == (
        JobFolder(out).best / "model.safetensors"
    ).read_bytes()


def test_a_run_that_reaches_100_percent_on_its_held_out_sample_stops_there_with_the_best_checkpoint(
    tmp_path, tiny_model
):
    # A task learnt in a few steps (always answer "yes"), so the ceiling comes long before max_steps.
    words = tiny.read_jsonl(REVERSE / "rlvr.jsonl")[:240]
    rows = [{"messages": [w["prompt"][0], {"role": "assistant", "content": "yes"}]} for w in words[:200]]
    held = [{"prompt": w["prompt"], "answer": "yes"} for w in words[200:]]
    (tmp_path / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held))
    events = run_spec(tmp_path / "run", {
        "technique": "sft", "model": str(tiny_model / "base"), "dataset": str(tmp_path / "sft.jsonl"),
        "eval_dataset": str(tmp_path / "eval.jsonl"),
        "training": {"method": "full", "max_steps": 200, "eval_every": 5, "save_steps": 1000},
    })  # fmt: skip
    metrics = events[-1]["metrics"]
    checks = _events_of(events, "heldout")
    assert checks[0]["step"] == 0 and checks[0]["score"] == 0.0 and checks[0]["sample"] is True
    assert all(c["n"] == 32 and c["grader"] == "exact_match" for c in checks)
    assert checks[-1]["score"] == 1.0 and checks[-1]["best"] is True
    assert metrics["global_step"] == metrics["best_step"] == checks[-1]["step"] < 100
    assert "scored 100%" in metrics["stopped_early"]
    assert metrics["heldout_before"] == 0.0 and metrics["heldout_after"] == 1.0
    assert metrics["verdict"] == "better"
    out = tmp_path / "run" / "out"
    assert json.loads((JobFolder(out).best / "best.json").read_text())["step"] == metrics["best_step"]
    _assert_result_is_the_best_checkpoint(out)


def test_grpo_at_a_far_too_high_learning_rate_gets_guardrails_stops_early_and_ends_worse(
    tmp_path, tiny_model
):
    # The one setting chosen here is the bad one under test: everything else is automatic.
    events = run_spec(tmp_path, {
        "technique": "rlvr", "model": str(tiny_model / "partial"), "dataset": str(REVERSE / "rlvr.jsonl"),
        "training": {"method": "full", "max_steps": 40, "learning_rate": 0.1, "save_steps": 1000},
    })  # fmt: skip
    guardrails = _events_of(events, "guardrail")
    # No answer earns a reward, and the guardrail says to lower the learning rate. Whether the answers also
    # run to the length limit first ("clipped", tests/training/test_guardrails.py) depends on the CPU's
    # arithmetic: they did on an AMD EPYC, not on an Intel Xeon.
    zero = [g for g in guardrails if g["code"] == "reward_zero"]
    assert zero and "Lower the learning rate" in zero[0]["message"], guardrails
    metrics = events[-1]["metrics"]
    assert metrics["global_step"] < 40 and metrics["stopped_early"]
    assert metrics["verdict"] == "worse", metrics
    assert metrics["heldout_after"] < metrics["heldout_interval_before"][0]
    assert "worse than its base" in metrics["verdict_reason"]
    # The result is the best checkpoint by the held-out sample, not the last step.
    assert metrics["best_step"] < metrics["global_step"]
    _assert_result_is_the_best_checkpoint(tmp_path / "out")


def test_a_run_whose_reward_is_zero_for_the_first_fifth_of_its_steps_stops_with_that_explanation(
    tmp_path, tiny_model
):
    events = run_spec(tmp_path, {
        "technique": "rlvr", "model": str(tiny_model / "partial"), "dataset": str(REVERSE / "rlvr.jsonl"),
        "params": {"graders": ["regex"], "grader_options": {"regex": {"pattern": "NEVER WRITTEN"}}},
        "training": {"method": "lora", "max_steps": 20, "save_steps": 1000},
    })  # fmt: skip
    stops = [g for g in _events_of(events, "guardrail") if g["level"] == "stop"]
    assert [g["code"] for g in stops] == ["reward_zero"]
    assert stops[0]["step"] == 4  # 20% of 20 steps, every one logged with reward 0
    metrics = events[-1]["metrics"]
    assert metrics["global_step"] == 4 and metrics["stopped_early"] == stops[0]["message"]
    assert "No answer earned any reward in the first 4 of 20 steps" in metrics["stopped_early"]
    assert metrics["heldout_grader"] == "Matches the pattern" and metrics["heldout_after"] == 0.0


def _spec(folder: Path, model: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "technique": "sft", "model": str(model), "dataset": str(REVERSE / "sft.jsonl"),
        "eval_dataset": str(REVERSE / "eval.jsonl"), "output_dir": str(folder / "out"),
        "training": {"method": "full", "max_steps": 40, "save_steps": 10, "eval_every": 5, "patience": 100},
        "tracking": {"enabled": False},
    }  # fmt: skip
    (folder / "spec.json").write_text(json.dumps(spec))
    return folder / "spec.json"


def _run(spec: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "workers.training", "run", str(spec)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)  # fmt: skip


def test_a_killed_run_resumes_with_its_best_checkpoint_and_held_out_curve(tmp_path, tiny_model):
    whole = tmp_path / "whole"
    assert _run(_spec(whole, tiny_model / "partial")).wait(300) == 0
    spec = _spec(tmp_path / "killed", tiny_model / "partial")
    out = tmp_path / "killed" / "out"
    proc = _run(spec)
    deadline = time.monotonic() + 240
    while not any(e["event"] == "heldout" and e["step"] >= 15
                  for e in (read_events(JobFolder(out).events) if JobFolder(out).events.exists() else [])):  # fmt: skip
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(JobFolder(out).heldout.read_text())["history"][-1][0] >= 15
    assert _run(spec).wait(300) == 0
    events = read_events(JobFolder(out).events)
    assert any(e["event"] == "resumed" and 10 <= e["step"] < 40 for e in events)
    done, expected = events[-1]["metrics"], read_events(JobFolder(whole / "out").events)[-1]["metrics"]
    assert done["best_step"] == expected["best_step"] and done["heldout_after"] == expected["heldout_after"]
    curve = json.loads(JobFolder(out).heldout.read_text())["history"]
    assert curve == json.loads(JobFolder(whole / "out").heldout.read_text())["history"]
    assert [h[0] for h in curve] == list(range(0, 41, 5))
    assert (out / "model" / "model.safetensors").read_bytes() == (
        whole / "out" / "model" / "model.safetensors"
    ).read_bytes()
