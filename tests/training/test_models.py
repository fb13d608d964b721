from __future__ import annotations

from pathlib import Path

import pytest

from workers.training.models import ModelError, load_model, load_tokenizer, resolve
from workers.training.spec import ModelRef


def test_a_model_folder_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(ModelError, match=f"No model folder at {tmp_path}/nope"):
        load_model(ModelRef(f"{tmp_path}/nope"))


def test_a_folder_without_a_model_says_so(tmp_path):
    with pytest.raises(ModelError, match="holds no model"):
        resolve(ModelRef(str(tmp_path)))


def test_a_hub_model_that_cannot_be_reached_gets_a_message_naming_it(monkeypatch, tmp_path):
    # No hub is reachable here; offline mode makes that immediate instead of a network time-out (46 s of
    # retries). huggingface_hub reads the variable once, at import, so the constant is set as well.
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="“acme/not-a-model-xyz”"):
        load_tokenizer(ModelRef("acme/not-a-model-xyz"))


def test_qlora_on_a_machine_without_a_gpu_says_what_to_choose_instead(tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.fail("this test describes the CPU machines; on a GPU QLoRA is expected to load")
    with pytest.raises(ModelError, match="QLoRA needs an NVIDIA GPU"):
        load_model(ModelRef(str(tiny_model / "base")), method="qlora")


def test_an_earlier_jobs_adapter_is_merged_into_its_base(tiny_model, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    base = load_model(ModelRef(str(tiny_model / "base")))
    peft_model = get_peft_model(
        base, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
    where = resolve(ModelRef(str(tmp_path / "adapter")))
    assert where["adapter"] == str(tmp_path / "adapter") and where["base"] == str(tiny_model / "base")
    merged = load_model(ModelRef(str(tmp_path / "adapter")))
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, expected, atol=1e-5)


def test_full_fine_tuning_from_a_lora_job_trains_the_merged_weights_and_saves_a_plain_model(
    lora_adapter, tmp_path
):
    """PEFT freezes the base's weights when it wraps them, and merging kept them frozen, so full SFT
    from an adapter failed with "element 0 of tensors does not require grad"."""
    import torch
    from transformers import AutoModelForCausalLM

    from tests.conftest import run_spec
    from workers.training import tiny

    events = run_spec(tmp_path, {
        "technique": "sft", "model": str(lora_adapter), "dataset": str(tiny.DEMO / "reverse" / "sft.jsonl"),
        "training": {"method": "full", "max_steps": 12, "batch_size": 16, "learning_rate": 2e-4,
                     "save_steps": 10_000},
    })  # fmt: skip
    losses = [e["metrics"]["loss"] for e in events if e["event"] == "step" and "loss" in e["metrics"]]
    # Every step has a loss that changes as the weights do (the bug raised before the first step); the
    # base is already good at the task, so the losses stay near 0.55 rather than falling steadily.
    assert len(losses) == 12 and len(set(losses)) == 12
    saved = Path(events[-1]["artifacts"]["model"])
    assert not (saved / "adapter_config.json").exists()
    plain = AutoModelForCausalLM.from_pretrained(saved)  # plain transformers, no PEFT
    assert not any("lora" in name for name, _ in plain.named_parameters())
    merged = load_model(ModelRef(str(lora_adapter)))
    assert not torch.equal(plain.model.embed_tokens.weight, merged.model.embed_tokens.weight)
