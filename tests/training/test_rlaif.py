"""RLAIF's judge against a judge server running as a separate local process (tests/training/judge_server.py,
a rule-based stand-in for an LLM judge until Atelier's own engine serves one)."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Service
from workers.training import tiny
from workers.training.events import read_events
from workers.training.judge import Judge
from workers.training.runner import run_and_report

HERE = Path(__file__).parent
REVERSE = tiny.DEMO / "reverse"
PROMPT = [{"role": "user", "content": "reverse: c a t"}]


@pytest.fixture(scope="module")
def judge_url(tmp_path_factory) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    service = Service(
        "judge", [sys.executable, str(HERE / "judge_server.py"), str(port)], tmp_path_factory.mktemp("judge")
    )

    def up() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    service.wait_until(up, 15, "listening")
    yield f"http://127.0.0.1:{port}/v1"
    service.stop()


def test_the_judge_scores_answers_against_the_rubric(judge_url):
    judge = Judge(judge_url, "reverse-judge", "The letters are reversed.")
    scores = judge([PROMPT] * 3, [[{"role": "assistant", "content": "t a c"}], "t a x", "c a t"])
    assert scores == [1.0, pytest.approx(0.7), pytest.approx(0.3)]
    assert judge.failures == []


def test_a_judge_that_answers_garbage_times_out_or_is_unreachable_gives_zero_with_a_reason(judge_url):
    garbage = Judge(judge_url, "garbage", "r")
    assert garbage([PROMPT], ["t a c"]) == [0.0]
    assert "holds no score from 0 to 10" in garbage.failures[0]
    slow = Judge(judge_url, "slow", "r", timeout=0.5)
    assert slow([PROMPT], ["t a c"]) == [0.0]
    assert "did not answer within 0.5 s" in slow.failures[0]
    gone = Judge("http://127.0.0.1:9/v1", "any", "r")
    assert gone([PROMPT], ["t a c"]) == [0.0]
    assert "could not be used" in gone.failures[0]


def _rlaif(tmp_path: Path, model_path: Path, judge_url: str, judge_model: str) -> list[dict]:
    spec = {
        "technique": "rlaif", "model": str(model_path), "dataset": str(REVERSE / "rlvr.jsonl"),
        "output_dir": str(tmp_path / "out"), "tracking": {"enabled": False},
        "params": {"judge_url": judge_url, "judge_model": judge_model, "rubric": "The letters are reversed.",
                   "judge_timeout": 2.0},
        "training": {"method": "lora", "max_steps": 4},
    }  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert run_and_report(tmp_path / "spec.json") == 0, read_events(tmp_path / "out" / "events.jsonl")[-1]
    return read_events(tmp_path / "out" / "events.jsonl")


def test_rlaif_trains_on_the_judges_scores(tmp_path, tiny_model, judge_url):
    events = _rlaif(tmp_path, tiny_model / "partial", judge_url, "reverse-judge")
    rewards = [
        e["metrics"]["rewards/judge/mean"] for e in events if "rewards/judge/mean" in e.get("metrics", {})
    ]
    assert len(rewards) == 4 and 0 < sum(rewards) / 4 <= 1
    assert events[-1]["event"] == "finished"


def test_rlaif_survives_a_judge_that_answers_garbage(tmp_path, tiny_model, judge_url):
    events = _rlaif(tmp_path, tiny_model / "partial", judge_url, "garbage")
    rewards = [
        e["metrics"]["rewards/judge/mean"] for e in events if "rewards/judge/mean" in e.get("metrics", {})
    ]
    assert rewards == [0.0] * 4
    assert events[-1]["event"] == "finished"


def test_rlaif_without_a_judge_or_reward_model_fails_clearly(tmp_path, tiny_model):
    spec = {"technique": "rlaif", "model": str(tiny_model / "partial"), "dataset": str(REVERSE / "rlvr.jsonl"),
            "output_dir": str(tmp_path / "out"), "tracking": {"enabled": False}}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert run_and_report(tmp_path / "spec.json") == 1
    assert (
        "RLAIF needs a judge (its URL and model) or a reward model."
        in read_events(tmp_path / "out" / "events.jsonl")[-1]["message"]
    )


def test_the_judge_server_speaks_the_chat_completions_protocol(judge_url):
    body = json.dumps({"model": "reverse-judge", "messages": [{"role": "user", "content": "x"}]}).encode()
    request = urllib.request.Request(
        f"{judge_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read())["choices"][0]["message"]["role"] == "assistant"
