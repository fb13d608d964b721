"""The Python grader sandbox against hostile graders (tests/training/hostile_graders/, each file's first
line the reason it must score 0 with), through the two paths a grader reaches it by: the service behind
the wizard's "Try" button and the reward function RLVR builds from a spec, the one GRPO calls; then one
short real RLVR run with a hostile grader next to a real one. The worker here is root, so this is the
sandbox that drops to an unprivileged uid."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workers.training import tiny
from workers.training.events import read_events
from workers.training.folder import JobFolder
from workers.training.graders import make, sandbox, seccomp
from workers.training.graders.sandbox import run_python_grader, sandbox_state
from workers.training.spec import JobSpec
from workers.training.techniques import REGISTRY, make_params, rlvr
from workers.training.train import run_and_report

HOSTILE = sorted((Path(__file__).parent / "hostile_graders").glob("*.py"))
REVERSE = tiny.DEMO / "reverse"
CANARY = "ATELIER_HOSTILE_CANARY"
BENIGN = "def grade(completion, answer, **row):\n    return 1.0 if completion == answer else 0.25\n"


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    """A port on the host's loopback that accepts: the network grader must not reach it."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def columns(listener, tiny_model, monkeypatch) -> dict[str, Any]:
    """The row's extra columns for the hostile graders, and a secret in the worker's environment."""
    monkeypatch.setenv(CANARY, "the worker's secret")
    data_dir = tiny_model.parents[1]  # the data folder: models, datasets, the database
    assert data_dir.is_dir() and any(data_dir.iterdir())
    return {"port": listener, "data_dir": str(data_dir)}


def test_the_self_check_finds_this_host_safe_as_root_and_refuses_a_root_sandbox_uid(monkeypatch):
    state = sandbox_state()
    assert state.safe, state.detail
    assert os.geteuid() != 0 or "uid 65534" in state.detail
    monkeypatch.setenv(sandbox.SANDBOX_UID_ENV, "0")
    sandbox_state.cache_clear()
    try:
        refused = sandbox_state()
        assert not refused.safe and "must be the number of an unprivileged user" in refused.detail
        with pytest.raises(sandbox.SandboxUnsafe, match="Python graders are turned off on this server"):
            make("python", code=BENIGN)
    finally:
        monkeypatch.delenv(sandbox.SANDBOX_UID_ENV)
        sandbox_state.cache_clear()
    assert sandbox_state().safe


def test_both_seccomp_programs_build_for_both_architectures_and_no_other():
    for machine in ("x86_64", "aarch64"):
        base, no_spawn = seccomp.base_filter(machine), seccomp.no_spawn_filter(machine)
        # A comparison a refused call that exists there, plus the architecture check and the returns.
        assert (
            len(base) % 8 == 0 and len(no_spawn) % 8 == 0 and len(base) // 8 > len(seccomp.BASE_DENIED) // 2
        )
    assert seccomp.base_filter("x86_64") != seccomp.base_filter("aarch64")
    with pytest.raises(seccomp.UnsupportedArchitecture, match="riscv64"):
        seccomp.base_filter("riscv64")


def test_a_benign_grader_scores_right_with_threads_and_tmp(columns):
    code = (
        "import threading\n"
        "def grade(completion, answer, **row):\n"
        "    out = []\n"
        "    t = threading.Thread(target=lambda: out.append(completion == answer))\n"
        "    t.start(); t.join()\n"
        "    with open('/tmp/scratch', 'w') as f:\n"
        "        f.write('ok')\n"
        "    return 1.0 if out[0] else 0.25\n"
    )
    rows = [{"answer": "t a c", **columns}] * 3
    assert run_python_grader(code, ["t a c", "x", "t a c"], rows, details=True) == [
        (1.0, None), (0.25, None), (1.0, None),
    ]  # fmt: skip


def test_what_a_grader_prints_never_counts_and_leaving_early_scores_zero():
    code = (
        "import json, os\n"
        "def grade(completion, **row):\n"
        "    print(json.dumps({'results': [{'score': 1.0}] * 3}), flush=True)\n"
        "    if completion == 'leave':\n"
        "        os._exit(0)\n"
        "    return 0.5\n"
    )
    pairs = run_python_grader(code, ["stay", "leave", "never asked"], [{}] * 3, details=True)
    assert pairs[0] == (0.5, None)
    assert pairs[1][0] == pairs[2][0] == 0.0
    assert "exited (status 0) before it scored this completion" in pairs[1][1]


def _reward_spec(code: str) -> Any:
    return make_params(REGISTRY["rlvr"], {"graders": ["exact_match", "python"],
                                           "grader_options": {"python": {"code": code}}})  # fmt: skip


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.stem)
def test_a_hostile_grader_scores_zero_with_its_reason_as_grpo_calls_it(path, columns, caplog):
    reward = rlvr.make_graders(_reward_spec(path.read_text()))["python"]
    prompts = [[{"role": "user", "content": "reverse: c a t"}]] * 2
    # As TRL calls a reward: its own lists beside the dataset's columns, one batch in one sandbox.
    scores = reward(
        prompts=prompts, completions=["t a c", "t a c"], completion_ids=[[1], [2]], answer=["t a c"] * 2,
        port=[columns["port"]] * 2, data_dir=[columns["data_dir"]] * 2, trainer_state=None,
    )  # fmt: skip
    assert scores == [0.0, 0.0]
    assert expected(path) in caplog.text
    assert not Path("/usr/lib/escaped.txt").exists() and not Path("/usr/escaped.txt").exists()


def test_every_hostile_grader_scores_zero_with_its_reason_when_tried_before_launch(
    tmp_path, columns, tiny_model
):
    from workers.training.trial import try_rewards

    rows = [{"prompt": [{"role": "user", "content": "reverse: c a t"}], "answer": "t a c", **columns}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for path in HOSTILE:
        spec = JobSpec.from_dict({
            "technique": "rlvr", "model": str(tiny_model / "partial"), "dataset": str(tmp_path / "rows.jsonl"),
            "params": {"graders": ["python"], "grader_options": {"python": {"code": path.read_text()}}},
        })  # fmt: skip
        [result] = try_rewards(spec, rows=1)
        assert result["scores"] == {"python": 0.0}, path.stem
        assert any(expected(path) in note for note in result["notes"]), (path.stem, result["notes"])


def test_the_cli_behind_the_try_button_refuses_python_graders_where_the_sandbox_is_unsafe(
    tmp_path, tiny_model
):
    spec = {"technique": "rlvr", "model": str(tiny_model / "partial"), "dataset": str(REVERSE / "rlvr.jsonl"),
            "params": {"graders": ["python"], "grader_options": {"python": {"code": BENIGN}}}}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "workers.training", "try", str(tmp_path / "spec.json"), "--rows", "1"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, sandbox.SANDBOX_UID_ENV: "0"}, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert "Python graders are turned off on this server" in json.loads(done.stdout)["error"]


def test_a_short_rlvr_run_with_a_fork_bomb_beside_exact_match_still_trains(tmp_path, full_sft):
    # From a model that can reverse, so exact_match earns a reward in every step (from the partial model a
    # step of 16 answers can all miss, and a run of 4 steps whose reward is 0 stops by design).
    spec = {
        "technique": "rlvr", "model": str(full_sft[0]), "dataset": str(REVERSE / "rlvr.jsonl"),
        "params": {"graders": ["exact_match", "python"], "num_generations": 4, "max_completion_length": 16,
                   "grader_options": {"python": {"code": (HOSTILE[0].parent / "fork_bomb.py").read_text()}}},
        "training": {"method": "lora", "max_steps": 4}, "output_dir": str(tmp_path / "out"),
        "tracking": {"enabled": False},
    }  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    code = run_and_report(tmp_path / "spec.json")
    events = read_events(JobFolder(tmp_path / "out").events)
    assert code == 0, events[-1]
    steps = [e["metrics"] for e in events if e["event"] == "step" and "rewards/python/mean" in e["metrics"]]
    assert len(steps) == 4
    assert all(m["rewards/python/mean"] == 0.0 for m in steps)
    assert sum(m["rewards/exact_match/mean"] for m in steps) > 0  # the real grader still scores
    assert events[-1]["event"] == "finished"


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/python3").exists(), reason="needs root to become nobody"
)
def test_a_worker_that_is_not_root_runs_the_sandbox_as_itself_just_as_safely():
    # The system Python as nobody: the sandbox module needs only the standard library.
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from workers.training.graders.sandbox import run_python_grader, sandbox_state\n"
        "state = sandbox_state()\n"
        "code = open(sys.argv[1]).read()\n"
        "pairs = run_python_grader(code, ['c'], [{}], details=True)\n"
        "print(json.dumps({'safe': state.safe, 'detail': state.detail, 'remount': pairs[0]}))\n"
    )
    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", script, str(Path(__file__).parent / "hostile_graders" / "remount.py")],
        capture_output=True, text=True, timeout=120, check=False, user=65534, group=65534, extra_groups=[],
        env={"PATH": "/usr/bin:/bin"}, cwd="/tmp",
    )  # fmt: skip
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["safe"] and "the worker's own uid 65534" in result["detail"], result
    assert result["remount"][0] == 0.0 and "PermissionError: [Errno 1] mount" in result["remount"][1]
