"""Chains (SFT → DPO → ...) in the training layer: a job trained from an earlier job's adapter trains from
that adapter merged into its base, written once in the earlier job's `merged/` folder, and its own adapter
names that folder, so plain transformers + PEFT load it on the weights it was trained on (before, PEFT
named the grand-parent and every tool loaded the child onto the wrong base)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_spec
from workers.training import tiny

REVERSE = tiny.DEMO / "reverse"


def plain_answers(folder: Path, prompts: list[Any], max_new_tokens: int = 24) -> list[str]:
    """Greedy answers of a saved artifact with plain transformers + PEFT, reading only its files (no
    Atelier code): what anyone who downloads it gets."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = folder / "adapter_config.json"
    model: Any
    if config.exists():
        base = json.loads(config.read_text())["base_model_name_or_path"]
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model.eval()
    answers = []
    with torch.no_grad():
        for prompt in prompts:  # one at a time: no padding, nothing shared with Atelier's batching
            ids: Any = tokenizer.apply_chat_template(
                prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)  # fmt: skip
            text: Any = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
            answers.append(text.strip())
    return answers


def eval_prompts(n: int | None = None) -> list[Any]:
    rows = [json.loads(line) for line in (REVERSE / "eval.jsonl").read_text().splitlines() if line.strip()]
    return [r["prompt"] for r in rows[:n]]


def _sft(folder: Path, model: str, steps: int, method: str = "lora") -> list[dict[str, Any]]:
    return run_spec(folder, {
        "technique": "sft", "model": model, "dataset": str(REVERSE / "sft.jsonl"),
        "training": {"method": method, "max_steps": steps, "batch_size": 16, "save_steps": 10_000},
    })  # fmt: skip


@pytest.fixture(scope="module")
def parent(tmp_path_factory, tiny_model) -> Path:
    """Job A: a few steps of LoRA SFT on the partly trained tiny model; its adapter folder."""
    folder = tmp_path_factory.mktemp("chain-a")
    events = _sft(folder, str(tiny_model / "partial"), 20)
    return Path(events[-1]["artifacts"]["adapter"])


def test_a_child_of_an_adapter_names_the_parents_merged_model_which_a_second_child_reuses(
    parent, tmp_path, tiny_model
):
    import torch
    from safetensors.torch import load_file

    from workers.training.generation import generate
    from workers.training.models import load_model, load_tokenizer, resolve
    from workers.training.spec import ModelRef

    merged = parent.parent / "merged"
    assert not merged.exists()
    dpo = run_spec(tmp_path / "b", {
        "technique": "dpo", "model": str(parent), "dataset": str(REVERSE / "dpo.jsonl"),
        "training": {"method": "lora", "max_steps": 8, "batch_size": 8, "save_steps": 10_000},
    })  # fmt: skip
    child = Path(dpo[-1]["artifacts"]["adapter"])
    assert json.loads((child / "adapter_config.json").read_text())["base_model_name_or_path"] == str(merged)
    assert (merged / "config.json").exists() and (merged / "tokenizer.json").exists()
    assert not (merged / "adapter_config.json").exists() and not merged.with_name("merged.partial").exists()
    # The merged weights are the parent's adapter merged into the partial model, not the partial model.
    partial = load_file(tiny_model / "partial" / "model.safetensors")
    saved = load_file(merged / "model.safetensors")
    assert any(not torch.equal(saved[k], partial[k]) for k in partial if k in saved)
    where = resolve(ModelRef(str(child)))
    assert where["base"] == str(merged) and where["adapter"] == str(child)

    # A second child (full SFT this time) trains from the same folder and does not write it again.
    stamp = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in merged.iterdir()}
    full = _sft(tmp_path / "c", str(parent), 3, method="full")
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in merged.iterdir()} == stamp
    model_c = Path(full[-1]["artifacts"]["model"])
    assert not (model_c / "adapter_config.json").exists()

    # Plain transformers + PEFT on the child's files answer as Atelier's evaluation path loads it.
    prompts = eval_prompts()
    ref = ModelRef(str(child))
    atelier = generate(load_model(ref), load_tokenizer(ref), prompts)
    assert plain_answers(child, prompts) == atelier
    # ... and they are the child's answers, not those of the child's adapter on the grand-parent (the bug).
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    on_grandparent = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model / "partial"), child
    )
    assert generate(on_grandparent, load_tokenizer(ref), prompts) != atelier


def test_two_children_starting_at_once_merge_their_parent_once(parent, tmp_path):
    """The merge holds a lock beside the folder: a second merge waits for it, then finds the folder
    complete and keeps it."""
    import fcntl

    from workers.training.models import merge_adapter

    out = tmp_path / "merged"
    with open(tmp_path / "merged.lock", "a") as lock:  # another child is merging
        fcntl.flock(lock, fcntl.LOCK_EX)
        done: list[Path] = []
        waiting = threading.Thread(target=lambda: done.append(merge_adapter(parent, out)))
        waiting.start()
        time.sleep(1.0)
        assert waiting.is_alive() and not out.exists()
        fcntl.flock(lock, fcntl.LOCK_UN)
    waiting.join(60)
    assert done == [out] and (out / "model.safetensors").exists()
    first = (out / "model.safetensors").stat()
    assert merge_adapter(parent, out) == out
    again = (out / "model.safetensors").stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)


def test_a_resilient_lora_job_from_an_adapter_names_the_parents_merged_model(parent, tmp_path):
    """Resilient SFT loads its model in each replica: the same merged base as a plain run."""
    from tests.training.test_resilient import _group, _spec

    spec = _spec(tmp_path, parent, steps=3, replicas=(1, 1))
    data = json.loads(spec.read_text())
    data["training"] |= {"method": "lora", "learning_rate": 1e-4}
    spec.write_text(json.dumps(data))
    events = _group(spec, "--replicas", "1")
    adapter = Path(next(e for e in events if e["event"] == "finished")["artifacts"]["adapter"])
    named = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert named == str(parent.parent / "merged")
    from workers.training.generation import generate
    from workers.training.models import load_model, load_tokenizer
    from workers.training.spec import ModelRef

    ref, prompts = ModelRef(str(adapter)), eval_prompts(8)
    assert plain_answers(adapter, prompts) == generate(load_model(ref), load_tokenizer(ref), prompts)
