"""Measured peak CUDA memory of training steps against workers.training.estimate, on a GPU.

A randomly initialised Llama of a real model's shape (no hub needed) trains a few bf16 steps on random
tokens, fully and with LoRA; the peak of torch.cuda.max_memory_allocated is compared with the estimate.
Prints a table and writes bench/results/gpu_memory.json (or --out). Needs a CUDA GPU, torch,
transformers and peft; not part of the test suite.

    python bench/gpu_memory.py [--shape tinyllama|qwen0.5b] [--batch 4] [--length 512]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.training.estimate import GB, Shape, estimate

SHAPES = {
    # TinyLlama-1.1B's and Qwen2.5-0.5B's shapes
    "tinyllama": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
                  "num_key_value_heads": 4, "vocab_size": 32000, "tie_word_embeddings": False},
    "qwen0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
                 "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True},
}  # fmt: skip


def measure(shape_name: str, method: str, batch: int, length: int, steps: int = 3) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    config = LlamaConfig(**SHAPES[shape_name], max_position_embeddings=max(2048, length))
    # As the runner loads them: fp32 for full fine-tuning (bf16 autocast), a bf16 base under LoRA.
    dtype = torch.float32 if method == "full" else torch.bfloat16
    model = LlamaForCausalLM(config).to(device="cuda", dtype=dtype)
    real_params = sum(p.numel() for p in model.parameters())
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
        # Adapters train in fp32 (as PEFT and TRL keep them), the frozen base in bf16.
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    ids = torch.randint(0, config.vocab_size, (batch, length), device="cuda")
    started = time.perf_counter()
    for _ in range(steps):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    step_s = (time.perf_counter() - started) / steps
    peak = torch.cuda.max_memory_allocated() / GB
    shape = Shape.from_config(config)
    guess = estimate(
        shape, technique="sft", method=method, batch_size=batch, max_length=length, steps=1, lora_rank=16
    )
    del model, optimizer
    return {"shape": shape_name, "method": method, "parameters": real_params, "shape_parameters": shape.parameters,
            "batch": batch, "length": length, "measured_gb": round(peak, 2), "estimated_gb": guess.total_gb,
            "ratio": round(guess.total_gb / peak, 2), "step_seconds": round(step_s, 3),
            "estimated_class": guess.compute_class}  # fmt: skip


def main() -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu_memory.json"))
    args = parser.parse_args()
    rows = [
        measure(s, m, args.batch, args.length)
        for s in (args.shape or ["qwen0.5b", "tinyllama"])
        for m in ("full", "lora")
    ]
    print(f"GPU: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    print(
        f"{'shape':<10} {'method':<6} {'params':>13} {'measured GB':>12} {'estimate GB':>12} {'est/meas':>9} {'step s':>7}"
    )
    for r in rows:
        print(
            f"{r['shape']:<10} {r['method']:<6} {r['parameters']:>13,} {r['measured_gb']:>12} {r['estimated_gb']:>12} {r['ratio']:>9} {r['step_seconds']:>7}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, indent=2
        )
    )


if __name__ == "__main__":
    main()
