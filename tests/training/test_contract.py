"""The technique and grader descriptors: every registered technique declares what the other layers read
(techniques.base.Technique), and its declarations agree with each other. Parametrized over the registry,
so a technique added with one module and one registry line is held to the same contract."""

from __future__ import annotations

import dataclasses

import pytest

from workers.training import data, hparams
from workers.training.estimate import Shape, estimate
from workers.training.graders import REGISTRY as GRADERS
from workers.training.spec import Training
from workers.training.synthetic import schema
from workers.training.techniques import REGISTRY, make_params

TECHNIQUES = sorted(REGISTRY)
TINY = Shape(parameters=1_100_000, hidden_size=64, intermediate_size=256, layers=4, heads=4, vocab_size=300)


@pytest.mark.parametrize("name", TECHNIQUES)
def test_a_technique_declares_everything_the_other_layers_read(name):
    technique = REGISTRY[name]
    assert technique.name == name and technique.short and technique.title
    assert technique.summary.endswith(".") and len(technique.summary) < 200  # one sentence for its card
    assert dataclasses.is_dataclass(technique.params) and make_params(technique, {}) is not None
    assert technique.formats and all(f.columns for f in technique.formats)
    assert set(technique.learning_rates) == {"lora", "full"}
    for tiny, larger in technique.learning_rates.values():
        assert 0 < larger <= tiny < 0.1
    assert technique.synthetic.label.startswith(technique.short)
    assert set(technique.resilient) <= {"lora", "full"}
    assert technique.graders(make_params(technique, {}))[0] or technique.judged


@pytest.mark.parametrize("name", TECHNIQUES)
def test_the_rows_generate_data_writes_fit_the_technique_and_hold_out_a_reference(name):
    shape = REGISTRY[name].synthetic
    example = {field: f"{field} text" for field in shape.fields}
    rows = shape.make_rows(example, "a worse answer" if shape.needs_worse else None)
    assert rows and all(set(row) == set(shape.row_columns) for row in rows)
    check = data.validate(rows, name)
    assert check.ok, check.errors
    held = [REGISTRY[name].heldout(row) for row in check.rows]
    assert any(h is not None and h["prompt"] for h in held)
    if len(shape.fields) > 1:  # an answer was written: the held-out reference is the good one
        assert {h["answer"] for h in held if h and "answer" in h} == {f"{shape.fields[-1]} text"}


@pytest.mark.parametrize("name", TECHNIQUES)
def test_each_technique_gets_a_plan_and_an_estimate(name):
    technique = REGISTRY[name]
    plan = hparams.resolve(Training(), technique=name, n_params=TINY.parameters, n_rows=400,
                           token_lengths=[20] * 400, context=256, bf16_supported=False)  # fmt: skip
    assert plan.learning_rate == technique.learning_rates["lora"][0]
    assert (plan.num_generations is not None) == technique.samples_answers
    guess = estimate(TINY, technique=name, method="full", batch_size=plan.batch_size, max_length=64, steps=10,
                     gpu=False, num_generations=plan.num_generations or 4)  # fmt: skip
    alone = estimate(TINY, technique=name, method="full", batch_size=plan.batch_size, max_length=64, steps=10,
                     gpu=False, num_generations=plan.num_generations or 4, reference_model=False)  # fmt: skip
    assert (guess.weights_gb > alone.weights_gb) == technique.reference_copy


def test_an_unknown_technique_is_named_with_the_known_ones():
    with pytest.raises(data.DataError, match=", ".join(REGISTRY)):
        data.validate([{"prompt": "x"}], "ppo")
    with pytest.raises(ValueError, match="Unknown technique “ppo”"):
        hparams.learning_rate("ppo", "lora", 1)


def test_the_built_in_teacher_learnt_each_distinct_request_once():
    """A technique whose teacher request repeats an earlier one's (fields and hint) adds none to learn."""
    asked = {(schema.FIELDS[n], schema.HINTS[n]) for n in REGISTRY}
    assert len(schema.SHAPES) == len(asked) and schema.SHAPES[:4] == ("sft", "dpo", "rlvr", "rlaif")


@pytest.mark.parametrize("name", sorted(GRADERS))
def test_a_grader_declares_its_label_references_and_options(name):
    grader = GRADERS[name]
    assert grader.label and callable(grader.score)
    assert set(grader.needs) <= {"answer"}
    for option in grader.option_fields():
        assert option.metadata["label"] and option.metadata["kind"] in ("text", "json", "code")
