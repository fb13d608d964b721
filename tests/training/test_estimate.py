from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import LlamaConfig

from workers.training.estimate import Shape, estimate, lora_parameters

ROOT = Path(__file__).resolve().parents[2]
TINYLLAMA = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                        num_key_value_heads=4, vocab_size=32000)  # fmt: skip
LLAMA_8B = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, vocab_size=128256)  # fmt: skip


def test_the_parameter_count_comes_from_the_config_alone():
    assert Shape.from_config(TINYLLAMA).parameters == 1_100_048_384  # TinyLlama-1.1B's real count
    assert Shape.from_config(LLAMA_8B).parameters == 8_030_261_248  # Llama-3.1-8B's


def test_lora_trains_a_small_fraction_and_needs_far_less_memory_than_full():
    shape = Shape.from_config(LLAMA_8B)
    assert lora_parameters(shape, 16) / shape.parameters < 0.01
    full = estimate(shape, technique="sft", method="full", batch_size=4, max_length=1024, steps=100)
    lora = estimate(shape, technique="sft", method="lora", batch_size=4, max_length=1024, steps=100)
    qlora = estimate(shape, technique="sft", method="qlora", batch_size=4, max_length=1024, steps=100)
    assert full.compute_class == "multi-GPU" and full.total_gb > 120
    assert lora.compute_class == "80 GB GPU"
    assert qlora.total_gb < lora.total_gb < full.total_gb
    # Without activation checkpointing the activations dominate: one sequence at a time fits 24 GB.
    small = estimate(shape, technique="sft", method="qlora", batch_size=1, max_length=1024, steps=100)
    assert small.compute_class == "24 GB GPU"


def test_dpo_and_rl_cost_more_than_sft_at_the_same_batch():
    shape = Shape.from_config(TINYLLAMA)
    sft = estimate(shape, technique="sft", method="full", batch_size=4, max_length=512, steps=10)
    dpo = estimate(shape, technique="dpo", method="full", batch_size=4, max_length=512, steps=10)
    assert dpo.weights_gb == pytest.approx(2 * sft.weights_gb, rel=1e-3)  # the frozen reference copy
    assert dpo.activations_gb == pytest.approx(2 * sft.activations_gb, rel=1e-3)  # chosen and rejected
    assert dpo.total_gb > sft.total_gb


def test_the_estimates_agree_with_the_peaks_measured_on_a_gpu():
    # bench/gpu_memory.py ran on a lent H200; its result is committed. Within 15% of each peak.
    measured = json.loads((ROOT / "bench" / "results" / "gpu_memory.json").read_text())
    assert len(measured["rows"]) == 4
    for row in measured["rows"]:
        assert 0.85 <= row["estimated_gb"] / row["measured_gb"] <= 1.15, row


def test_the_tiny_model_runs_on_a_cpu():
    shape = Shape(
        parameters=1_098_880, hidden_size=128, intermediate_size=512, layers=4, heads=4, vocab_size=384
    )
    guess = estimate(
        shape, technique="sft", method="full", batch_size=16, max_length=64, steps=100, gpu=False
    )
    assert guess.compute_class == "CPU" and guess.total_gb < 1
