from __future__ import annotations

import json
import re

import pytest

from workers.training.events import EventWriter, read_events
from workers.training.folder import Exit, JobFolder
from workers.training.hparams import LORA_RANKS, resolve
from workers.training.spec import (
    JobSpec,
    SpecError,
    Training,
    new_evaluation_spec,
    new_synthesis_spec,
    new_training_spec,
)
from workers.training.techniques import REGISTRY, ParamsError, make_params


def test_a_spec_round_trips_through_json():
    spec = JobSpec.from_dict(
        {"technique": "sft", "model": "org/model", "dataset": "d.jsonl", "output_dir": "/tmp/o",
         "training": {"method": "full", "max_steps": 5}}
    )  # fmt: skip
    assert JobSpec.from_dict(json.loads(spec.to_json())) == spec
    assert spec.model.name_or_path == "org/model" and spec.training.max_steps == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"technique": "sft", "dataset": "d", "output_dir": "o"}, "The spec has no “model”."),
        ({"technique": "sft", "model": "m", "output_dir": "o"}, "The spec has no “dataset”."),
        ({"technique": "sft", "model": "m", "dataset": "d", "output_dir": "o", "colour": 1}, "Unknown spec fields: colour."),
        ({"technique": "sft", "model": "m", "dataset": "d", "output_dir": "o", "training": {"method": "half"}},
         "Training method must be one of lora, qlora, full, not “half”."),
    ],
)  # fmt: skip
def test_a_spec_that_cannot_run_says_why(data, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        JobSpec.from_dict(data)


def test_a_spec_is_built_and_checked_without_a_folder_and_only_runs_once_its_folder_fills_one_in(tmp_path):
    from workers.training.train import run_and_report

    spec = new_training_spec(technique="sft", model="m", dataset="d.jsonl", training={"max_steps": 5})
    assert "output_dir" not in spec and JobSpec.from_dict(spec).training.max_steps == 5
    with pytest.raises(SpecError, match="Training method must be one of"):
        new_training_spec(technique="sft", model="m", dataset="d.jsonl", training={"method": "half"})
    with pytest.raises(SpecError, match="at least two models"):
        new_evaluation_spec(models=[{"label": "a", "model": "m"}], dataset="d.jsonl", graders=["exact_match"],
                            max_rows=10, max_new_tokens=8, batch_size=4)  # fmt: skip
    with pytest.raises(SpecError, match="at least 1 row"):
        new_synthesis_spec(technique="sft", description="d", rows=0, teacher={"local": "m"}, stage="topics")
    # A spec without its folder is refused by the process that would write into it...
    loose = tmp_path / "loose.json"
    loose.write_text(json.dumps(spec))
    assert run_and_report(loose) == Exit.BAD_SPEC
    # ...and whoever creates the job's folder fills it in.
    folder = JobFolder(tmp_path / "job")
    written = json.loads(folder.write_spec(spec).read_text())
    assert written == {**spec, "output_dir": str(folder.path)} and folder.spec == folder.path / JobFolder.SPEC


def test_technique_parameters_are_checked_against_their_fields():
    sft = REGISTRY["sft"]
    assert make_params(sft, {}).completion_only_loss is True
    with pytest.raises(ParamsError, match="has no parameter beta"):
        make_params(sft, {"beta": 0.1})


def test_automatic_hyperparameters_follow_model_and_data_size():
    tiny = resolve(Training(), technique="sft", n_params=1_100_000, n_rows=400, token_lengths=[30] * 400,
                   context=256, bf16_supported=False)  # fmt: skip
    assert (tiny.batch_size, tiny.max_steps, tiny.max_length, tiny.bf16) == (16, 75, 64, False)
    assert tiny.learning_rate == 5e-3 and tiny.lora_rank in LORA_RANKS
    big = resolve(Training(), technique="sft", n_params=7_000_000_000, n_rows=10_000, token_lengths=[900] * 100,
                  context=4096, bf16_supported=True)  # fmt: skip
    assert (big.batch_size, big.gradient_accumulation, big.learning_rate, big.lora_rank, big.bf16) == (
        4,
        4,
        2e-4,
        32,
        True,
    )
    assert big.max_length == 928
    chosen = resolve(Training(method="full", learning_rate=1e-4, max_steps=7, lora_rank=64), technique="dpo",
                     n_params=1_000_000, n_rows=10, token_lengths=[10], context=256, bf16_supported=False)  # fmt: skip
    assert (chosen.learning_rate, chosen.max_steps, chosen.lora_rank) == (1e-4, 7, 64)


def test_events_are_json_lines_without_nan(tmp_path):
    writer = EventWriter(tmp_path / "e.jsonl", to_stdout=False)
    writer.emit("step", step=1, metrics={"loss": float("nan"), "lr": 0.1})
    writer.close()
    assert read_events(tmp_path / "e.jsonl")[0]["metrics"] == {"loss": None, "lr": 0.1}
