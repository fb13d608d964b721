"""RLAIF's judge, in process: the built-in judge (`atelier-tiny/judge`) served by the built-in engine for
judgements that grade, and tests/training/judge_server.py for judges that answer garbage or slowly.
RLAIF learning from the automatic settings, with the built-in judge deployed as an endpoint and reached
through the gateway, is tests/training/test_automatic.py's."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from workers.training import tiny
from workers.training.events import read_events
from workers.training.folder import JobFolder
from workers.training.judge import PROBE_MIN_CALLS, Judge, JudgeFailed
from workers.training.train import run_and_report

HERE = Path(__file__).parent
REVERSE = tiny.DEMO / "reverse"
PROMPT = [{"role": "user", "content": "reverse: c a t"}]


def test_the_built_in_judge_scores_right_answers_10_and_wrong_ones_0(builtin_judge_url):
    """Through the engine, as RLAIF asks. How often it is right on near misses (one letter off, where it
    errs most) is measured on held-out words in test_builtin_judge; here, answers it must not miss."""
    judge = Judge(builtin_judge_url, "judge", "The letters are reversed.")
    words = ["cat", "house", "river", "garden"]
    prompts = [[{"role": "user", "content": "reverse: " + " ".join(w)}] for w in words]
    right = [[{"role": "assistant", "content": " ".join(reversed(w))}] for w in words]
    unreversed = [" ".join(w) for w in words]
    scores = judge(prompts * 2, right + unreversed)
    assert judge.failures == [] and scores == [1.0] * 4 + [0.0] * 4


def test_a_judge_that_answers_garbage_times_out_or_is_unreachable_gives_zero_with_a_reason(judge_url):
    garbage = Judge(judge_url, "garbage", "r")
    assert garbage._ask(PROMPT, "t a c", "r") == 0.0
    assert "holds no score from 0 to 10" in garbage.failures[0]
    slow = Judge(judge_url, "slow", "r", timeout=0.5)
    assert slow._ask(PROMPT, "t a c", "r") == 0.0
    assert "did not answer within 0.5 s" in slow.failures[0]
    gone = Judge("http://127.0.0.1:9/v1", "any", "r")
    assert gone._ask(PROMPT, "t a c", "r") == 0.0
    assert "could not be used" in gone.failures[0]


def test_a_judge_failing_on_more_than_half_of_its_first_calls_fails_with_its_own_words(judge_url):
    garbage = Judge(judge_url, "garbage", "r")
    with pytest.raises(JudgeFailed) as failed:
        garbage([PROMPT] * 4, ["t a c"] * 4)
    message = str(failed.value)
    assert message.startswith("The judge answered “") and "which holds no score from 0 to 10" in message
    assert "choose a judge model that can grade" in message and "4 of its first 4 judgements" in message
    # Reports: once broken, the judge is not asked again; each later judgement carries the reason.
    report_judge = Judge(judge_url, "garbage", "r")
    verdicts = [report_judge.review(PROMPT, "t a c") for _ in range(PROBE_MIN_CALLS + 5)]
    assert report_judge.calls == PROBE_MIN_CALLS and report_judge.broken
    assert all(v.value is None for v in verdicts) and verdicts[-1].problem == report_judge.broken


def test_a_judge_that_grades_is_not_stopped(builtin_judge_url):
    judge = Judge(builtin_judge_url, "judge", "The letters are reversed.")
    scores = judge([PROMPT] * 4, ["t a c", "t a c", "t a c", "t a c"])
    assert judge.broken is None and judge.failures == [] and scores == [1.0] * 4


def _rlaif(
    tmp_path: Path, model_path: Path, judge_url: str, judge_model: str, training: dict | None = None
) -> list[dict]:
    spec = {
        "technique": "rlaif", "model": str(model_path), "dataset": str(REVERSE / "rlvr.jsonl"),
        "eval_dataset": str(REVERSE / "eval.jsonl"), "output_dir": str(tmp_path / "out"),
        "tracking": {"enabled": False},
        "params": {"judge_url": judge_url, "judge_model": judge_model, "rubric": "The letters are reversed.",
                   "judge_timeout": 5.0, "num_generations": 8, "temperature": 1.0},
        "training": training or {"method": "lora", "max_steps": 4},
    }  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert run_and_report(tmp_path / "spec.json") == 0, read_events(JobFolder(tmp_path / "out").events)[-1]
    return read_events(JobFolder(tmp_path / "out").events)


def test_rlaif_trains_on_the_judges_scores(tmp_path, tiny_model, builtin_judge_url):
    """The built-in judge's scores are GRPO's reward, step by step (whether RLAIF *learns* from the
    automatic settings is test_automatic's, through the gateway)."""
    events = _rlaif(tmp_path, tiny_model / "partial", builtin_judge_url, "judge")
    steps = [e["metrics"] for e in events if "rewards/judge/mean" in e.get("metrics", {})]
    # Every step's reward is the judge's; a step's eight sampled answers may all be wrong (scored 0: seen
    # on an Intel Xeon, whose sums sample other answers than the AMD EPYC this was first run on).
    assert len(steps) == 4 and all(0 <= m["rewards/judge/mean"] <= 1 for m in steps), steps
    assert sum(m["rewards/judge/mean"] for m in steps) > 0, steps
    assert any(m["reward_std"] > 0 for m in steps)  # answers scored apart: something to learn from
    assert events[-1]["event"] == "finished" and events[-1]["metrics"]["global_step"] == 4


def test_rlaif_with_a_judge_that_answers_garbage_fails_fast_with_the_judges_words(
    tmp_path, tiny_model, judge_url
):
    spec = {
        "technique": "rlaif", "model": str(tiny_model / "partial"), "dataset": str(REVERSE / "rlvr.jsonl"),
        "output_dir": str(tmp_path / "out"), "tracking": {"enabled": False},
        "params": {"judge_url": judge_url, "judge_model": "garbage", "judge_timeout": 5.0, "num_generations": 4},
        "training": {"method": "lora", "max_steps": 50, "batch_size": 4},
    }  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert run_and_report(tmp_path / "spec.json") == 1
    events = read_events(JobFolder(tmp_path / "out").events)
    assert events[-1]["event"] == "failed" and "which holds no score" in events[-1]["message"]
    assert "choose a judge model that can grade" in events[-1]["message"]
    assert not [e for e in events if e["event"] == "step"]  # it stopped on its first batch, not at step 50


def test_rlaif_without_a_judge_or_reward_model_fails_clearly(tmp_path, tiny_model):
    spec = {"technique": "rlaif", "model": str(tiny_model / "partial"), "dataset": str(REVERSE / "rlvr.jsonl"),
            "output_dir": str(tmp_path / "out"), "tracking": {"enabled": False}}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert run_and_report(tmp_path / "spec.json") == 1
    assert (
        "RLAIF needs a judge (its URL and model) or a reward model."
        in read_events(JobFolder(tmp_path / "out").events)[-1]["message"]
    )


def test_the_judge_server_speaks_the_chat_completions_protocol(judge_url):
    body = json.dumps({"model": "garbage", "messages": [{"role": "user", "content": "x"}]}).encode()
    request = urllib.request.Request(
        f"{judge_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read())["choices"][0]["message"]["role"] == "assistant"
