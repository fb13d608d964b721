from __future__ import annotations

import hashlib
import json

import pytest

from workers.training import tiny
from workers.training.generation import generate
from workers.training.models import load_model, load_tokenizer
from workers.training.spec import ModelRef


@pytest.fixture(scope="module")
def held_out() -> list[dict]:
    from workers.training import heldout

    return heldout.select_rows(tiny.DEMO / "reverse" / "eval.jsonl")


def test_the_base_writes_text_but_fails_the_demo_task(tiny_model, held_out):
    model = load_model(ModelRef(str(tiny_model / "base")))
    tokenizer = load_tokenizer(ModelRef(str(tiny_model / "base")))
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 5_000_000
    assert tiny.reverse_score(model, tokenizer, held_out) <= 0.05
    text = generate(model, tokenizer, [[{"role": "user", "content": "Return the"}]], max_new_tokens=30)[0]
    assert len(text.split()) >= 3  # it writes words, not nothing


def test_the_partly_trained_variant_is_right_30_to_50_percent_of_the_time(tiny_model, held_out):
    model = load_model(ModelRef(str(tiny_model / "partial")))
    tokenizer = load_tokenizer(ModelRef(str(tiny_model / "partial")))
    score = tiny.reverse_score(model, tokenizer, held_out)
    assert 0.30 <= score <= 0.50
    assert json.loads((tiny_model / "partial" / "atelier.json").read_text())["reverse_exact_match"] == score


def test_it_is_saved_as_safetensors_with_a_chat_template(tiny_model):
    for variant in ("base", "partial"):
        folder = tiny_model / variant
        assert (folder / "model.safetensors").exists()
        assert not list(folder.glob("*.bin"))
    tokenizer = load_tokenizer(ModelRef(str(tiny_model / "base")))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "reverse: c a t"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nreverse: c a t<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.eos_token == "<|im_end|>"


def test_every_spaced_letter_and_digit_is_one_token(tiny_model):
    # The demo tasks spell words out; rows of one task must have one shape whatever the letters.
    tokenizer = load_tokenizer(ModelRef(str(tiny_model / "base")))
    symbols = "abcdefghijklmnopqrstuvwxyz0123456789"
    ids = tokenizer(" " + " ".join(symbols), add_special_tokens=False)["input_ids"]
    assert len(ids) == len(symbols)


def test_two_builds_of_the_base_are_byte_identical(tmp_path):
    # A shortened pre-training keeps this quick; determinism does not depend on the length.
    recipe = tiny.TinyRecipe(pretrain_steps=5)
    digests = []
    for name in ("one", "two"):
        model, tokenizer, _ = tiny.build_base(recipe)
        tiny.save(model, tokenizer, tmp_path / name, {"variant": "base"})
        digests.append(
            {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in (tmp_path / name).iterdir()}
        )
    assert digests[0] == digests[1]


def test_a_build_of_the_current_version_is_not_rebuilt(tiny_model):
    before = (tiny_model / "partial" / "model.safetensors").stat().st_mtime_ns
    tiny.build(tiny_model)
    assert (tiny_model / "partial" / "model.safetensors").stat().st_mtime_ns == before
