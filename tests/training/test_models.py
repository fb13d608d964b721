from __future__ import annotations

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
    # No hub is reachable here; offline mode makes that immediate instead of a network time-out.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
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
