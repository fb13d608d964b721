"""The built-in teacher (`atelier-tiny/teacher`, workers.training.builtin_teacher): what it is taught to
answer (the pipeline's own requests, replies its own checks accept), and how the shipped teacher, as
tiny.build installs it, does on requests with descriptions and seeds it never saw: rows kept by the
pipeline's checks, kept rows right, topic trees parsed."""

from __future__ import annotations

import json
import re

from workers.training import builtin_judge, builtin_teacher, tiny
from workers.training.synthetic import schema
from workers.training.synthetic.pipeline import FORMAT_HINTS, example_request, topic_request


def test_it_is_taught_the_pipelines_own_requests_with_replies_its_checks_accept():
    pairs = builtin_teacher.requests(
        builtin_judge.training_words(), builtin_teacher.DESCRIPTIONS, 200, seed=3
    )
    topics = [(m, r) for m, r in pairs if "Propose up to" in m[-1]["content"]]
    assert 5 <= len(topics) <= 40
    for messages, reply in pairs:
        spec_like = messages[-1]["content"]
        assert messages[0]["content"] in {topic_request(builtin_teacher._spec("sft", "x", []), [])[0]["content"],
                                          example_request(builtin_teacher._spec("sft", "x", []), "t", None, 1)[0]["content"]}  # fmt: skip
        if (messages, reply) in topics:
            assert schema.leaves(schema.topics_in(reply))
            continue
        technique = next(t for t, hint in FORMAT_HINTS.items() if hint in spec_like)
        good, reasons = schema.examples_in(reply, technique)
        count = int(re.search(r"\nWrite (\d+) new", spec_like).group(1))  # type: ignore[union-attr]
        assert len(good) == count and not reasons
        length = builtin_teacher.topic_length(spec_like.split("Topic: ")[1].split("\n")[0])
        assert all(builtin_teacher.correct(technique, e, length) for e in good)
    held = set(builtin_judge.held_out_words())
    assert not {builtin_judge.word_of(e["prompt"]) for _, r in pairs if "examples" in r
                for e in json.loads(r)["examples"]} & held  # fmt: skip


def test_a_row_is_right_when_its_answer_reverses_its_prompts_letters():
    assert builtin_teacher.correct("sft", {"prompt": "reverse: c a t", "completion": "t a c"}, 3)
    assert not builtin_teacher.correct("sft", {"prompt": "reverse: c a t", "completion": "t c a"})
    assert not builtin_teacher.correct(
        "rlvr", {"prompt": "reverse: c a t", "answer": "t a c"}, 4
    )  # the topic's length
    assert builtin_teacher.correct("rlaif", {"prompt": "reverse: d o g s"})
    assert not builtin_teacher.correct("rlaif", {"prompt": "tell me a joke"})


def test_the_shipped_teacher_keeps_most_rows_and_most_kept_rows_are_right(tiny_model):
    """Held-out requests: two descriptions it never saw, seeds from the eval file's words; a sample of 6
    requests per technique here (4 rows each, sampled at the pipeline's default temperature), all of them
    in atelier.json."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_model / "teacher"
    meta = json.loads((folder / "atelier.json").read_text())
    assert meta["variant"] == "teacher" and meta["kept"] >= 0.6 and meta["correct"] >= 0.8, meta
    model = AutoModelForCausalLM.from_pretrained(folder)
    sample = builtin_teacher.measure(model, AutoTokenizer.from_pretrained(folder), per_technique=6)
    assert sample["kept"] >= 0.6 and sample["correct"] >= 0.8, sample
    assert sample["topic_trees_parsed"] >= 0.75, sample


def test_tiny_build_installs_the_shipped_teacher_beside_the_others(tiny_model):
    assert (tiny_model / "teacher" / "atelier.json").read_bytes() == (
        tiny.SHIPPED["teacher"] / "atelier.json"
    ).read_bytes()
