from __future__ import annotations

import pytest

from workers.training.graders import REGISTRY, make, text
from workers.training.graders.sandbox import run_python_grader

CHAT = [[{"role": "assistant", "content": " T A C "}], [{"role": "assistant", "content": "c a t"}]]


def test_every_grader_is_registered_by_name():
    assert set(REGISTRY) == {"exact_match", "contains", "math_match", "regex", "json_schema", "python"}
    assert make("exact_match").__name__ == "exact_match"
    with pytest.raises(ValueError, match="Unknown grader “bleu”"):
        make("bleu")


def test_exact_match_ignores_case_and_spacing_and_takes_chat_completions():
    assert make("exact_match")(CHAT, answer=["t a c", "t a c"]) == [1.0, 0.0]
    assert text(CHAT[0]) == "T A C"


def test_contains_and_regex():
    assert make("contains")(["the answer is 19.", "no"], answer=["19", "19"]) == [1.0, 0.0]
    assert make("regex", pattern=r"\{.*\}")(['{"a": 1}', "a: 1"]) == [1.0, 0.0]


def test_math_match_compares_answers_as_mathematics():
    grade = make("math_match")
    assert grade(["19", "19.0", "The answer is $\\frac{38}{2}$", "18", "nonsense"], answer=["19"] * 5) == [
        1.0, 1.0, 1.0, 0.0, 0.0,
    ]  # fmt: skip


def test_json_schema_validity():
    schema = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
    grade = make("json_schema", schema=schema)
    assert grade(['{"name": "cat"}', '{"name": 3}', "not json"]) == [1.0, 0.0, 0.0]


GOOD = "def grade(completion, answer):\n    return 1.0 if completion == answer else 0.25\n"


def test_a_python_grader_scores_each_completion_with_its_row():
    grade = make("python", code=GOOD)
    assert grade(["t a c", "x"], answer=["t a c", "t a c"]) == [1.0, 0.25]


def test_a_python_grader_gets_only_the_columns_it_asks_for_when_trl_calls_it():
    # TRL calls rewards with its own lists beside the dataset's columns.
    grade = make("python", code=GOOD)
    prompts = [[{"role": "user", "content": "reverse: c a t"}]] * 2
    scores = grade(
        prompts=prompts, completions=["t a c", "x"], completion_ids=[[1], [2]], answer=["t a c", "t a c"]
    )
    assert scores == [1.0, 0.25]
    seeing = make(
        "python",
        code="def grade(completion, prompt, **row):\n    return 1.0 if prompt == 'reverse: c a t' and 'answer' in row else 0.0\n",
    )
    assert seeing(prompts=prompts[:1], completions=["t a c"], answer=["t a c"]) == [1.0]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("import socket\ndef grade(completion, **row):\n    socket.create_connection(('127.0.0.1', 5432), timeout=1)\n    return 1",
         "ConnectionRefusedError"),
        ("def grade(completion, **row):\n    open('/usr/lib/escape.txt', 'w').write('x')\n    return 1", "Read-only file system"),
        ("def grade(completion, **row):\n    open('/etc/passwd-copy', 'w')\n    return 1", "Read-only file system"),
        ("def grade(completion, **row):\n    while True: pass", "CPU time limit of 1 s"),
        ("import time\ndef grade(completion, **row):\n    time.sleep(30)", "past its time limit of 4 s"),
        ("def grade(completion, **row):\n    return 'yes'", "ValueError"),
        ("def grade(completion, **row):\n    return float('nan')", "it returned nan"),
        ("def grade(completion, **row):\n    return len(bytearray(2 * 1024 ** 3))", "MemoryError"),
        ("def grade(:", "the grader did not load: SyntaxError"),
    ],
)  # fmt: skip
def test_a_python_grader_that_breaks_the_rules_scores_zero_with_a_reason(code, reason):
    # One CPU second takes far longer than one on a loaded machine: the wall limit is the sleeper's only.
    wall = 4 if "sleep" in code else 60
    pairs = run_python_grader(code, ["c"], [{}], wall_seconds=wall, cpu_seconds=1, details=True)
    assert pairs[0][0] == 0.0
    assert reason in pairs[0][1]


def test_a_python_grader_may_write_in_its_own_tmp_and_cannot_see_the_data_folder():
    code = (
        "import os\n"
        "def grade(completion, **row):\n"
        "    open('/tmp/scratch', 'w').write('ok')\n"
        "    return float(not os.path.exists('/work') and not os.path.exists('/root/.ssh'))\n"
    )
    assert run_python_grader(code, ["c"], [{}], details=True) == [(1.0, None)]
