"""Memory and time before launch: weights, gradients, optimizer state and activations, by technique and
method, and the compute class they imply. Rules of thumb, checked against measured peaks
(bench/training.py on CPU; a GPU run of scripts/gpu_memory_check.py where a GPU was lent), not promises.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from workers.training.techniques import REGISTRY

GB = 1024**3
STARTUP_SECONDS = 7.0
CLASSES = (("24 GB GPU", 22 * GB), ("80 GB GPU", 76 * GB))
# Sustained training throughput, FLOP/s: the CPU figure is what SFT of the tiny model reached on the
# 2-core development machine (30 steps of 16 rows in 4.9 s); GPUs at 35% of their bf16 peak.
THROUGHPUT = {
    "CPU": 2.3e10,
    "24 GB GPU": 0.35 * 165e12,
    "80 GB GPU": 0.35 * 990e12,
    "multi-GPU": 0.35 * 990e12 * 4,
}


@dataclass(frozen=True)
class Shape:
    """What the estimate needs to know of a model, read from its config."""

    parameters: int
    hidden_size: int
    intermediate_size: int
    layers: int
    heads: int
    vocab_size: int

    @classmethod
    def from_config(cls, config: Any) -> Shape:
        hidden = int(config.hidden_size)
        layers = int(config.num_hidden_layers)
        inter = int(getattr(config, "intermediate_size", 4 * hidden))
        vocab = int(config.vocab_size)
        heads = int(config.num_attention_heads)
        kv = int(getattr(config, "num_key_value_heads", heads) or heads)
        attention = hidden * hidden * 2 + 2 * hidden * (hidden // heads) * kv
        per_layer = attention + 3 * hidden * inter + 2 * hidden
        embeddings = vocab * hidden * (1 if getattr(config, "tie_word_embeddings", False) else 2)
        return cls(layers * per_layer + embeddings + hidden, hidden, inter, layers, heads, vocab)


@dataclass(frozen=True)
class Estimate:
    weights_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float
    total_gb: float
    trainable_parameters: int
    compute_class: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lora_parameters(shape: Shape, rank: int) -> int:
    """LoRA on every linear layer: q, k, v, o, gate, up and down in each block."""
    h, i = shape.hidden_size, shape.intermediate_size
    return shape.layers * rank * (4 * 2 * h + 3 * (h + i))


def estimate(
    shape: Shape,
    *,
    technique: str,
    method: str,
    batch_size: int,
    max_length: int,
    steps: int,
    lora_rank: int = 16,
    gpu: bool = True,
    num_generations: int = 4,
    reference_model: bool = True,
) -> Estimate:
    """Peak memory of one training process and the time of its steps."""
    n = shape.parameters
    trainable = n if method == "full" else lora_parameters(shape, lora_rank)
    # What the runner does: on a GPU, full fine-tuning keeps fp32 weights under bf16 autocast (as the
    # HF Trainer does), LoRA freezes a bf16 (or 4-bit) base and trains fp32 adapters; on a CPU all is fp32.
    base_bytes = 4.0 if (not gpu or method == "full") else {"lora": 2.0, "qlora": 0.55}[method]
    weights = n * base_bytes + (0 if method == "full" else trainable * 4.0)
    gradients = trainable * 4.0
    optimizer = trainable * 8.0  # AdamW's two fp32 moments
    described = REGISTRY[technique]
    if described.reference_copy and method == "full" and reference_model:
        weights += n * base_bytes  # a frozen copy; LoRA uses its own base with the adapter switched off
    sequences = batch_size * described.sequences_per_row
    if described.samples_answers:
        sequences = max(batch_size, num_generations)
    # Saved activations per token: per layer about 10·hidden + 3.5·intermediate values, and about 12
    # bytes per vocabulary entry for the logits and their loss; fitted to measured CUDA peaks
    # (bench/results/gpu_memory.json) of TinyLlama- and Qwen2.5-0.5B-shaped models.
    value_bytes = 2.0 if gpu else 4.0
    per_token = shape.layers * (10 * shape.hidden_size + 3.5 * shape.intermediate_size) * value_bytes
    per_token += shape.vocab_size * (12 if gpu else 16)
    activations = sequences * max_length * per_token
    # The CUDA context on a GPU; on a CPU the training process itself (torch, transformers, TRL, datasets,
    # MLflow): refitted from peak RSS against the estimate for SFT, DPO and RLVR, full and LoRA, at 1M,
    # 50M and 140M parameters (bench/memory.py): 0.35 GB left the estimate at 0.70-0.88 of the peak.
    overhead = 0.6 * GB
    total = weights + gradients + optimizer + activations + overhead
    if not gpu or n < 50_000_000:
        compute = "CPU" if not gpu else CLASSES[0][0]
    else:
        compute = next((name for name, cap in CLASSES if total <= cap), "multi-GPU")
    tokens = steps * sequences * max_length
    flops = (6 if method == "full" else 4) * n * tokens
    return Estimate(
        weights_gb=round(weights / GB, 3),
        gradients_gb=round(gradients / GB, 3),
        optimizer_gb=round(optimizer / GB, 3),
        activations_gb=round(activations / GB, 3),
        total_gb=round(total / GB, 3),
        trainable_parameters=trainable,
        compute_class=compute if gpu else "CPU",
        # Plus the start: imports and model loading take 5 to 7 s before the first step.
        seconds=round(STARTUP_SECONDS + flops / THROUGHPUT["CPU" if not gpu else compute], 1),
    )
