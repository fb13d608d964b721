"""The memory estimate against the measured peak, on CPU, across techniques, methods and model sizes.

For each model size (the built-in tiny model, and two models of its architecture made here with random
weights: about 50M and 140M parameters with a 32,000-entry vocabulary, so the logits weigh as they do in
real models), each technique (SFT, DPO, RLVR) and each method (full, LoRA), it runs a few steps through
`python -m workers.training run` on the reverse demo with the automatic settings, measures the peak RSS
of the process and its children (psutil, every 50 ms), and sets it beside `estimate_spec`'s total, the
number the wizard's review and the job page show.

    python bench/memory.py [--sizes tiny,small,medium] [--steps 4]

Prints a table and writes bench/results/memory.json. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rss import peak_rss  # noqa: E402
from workers.training import tiny  # noqa: E402

DEMO = tiny.DEMO / "reverse"
DATA = {"sft": "sft.jsonl", "dpo": "dpo.jsonl", "rlvr": "rlvr.jsonl"}
# name: (hidden, intermediate, layers, heads, vocabulary); None: the built-in tiny model as it is.
SIZES: dict[str, tuple[int, int, int, int, int] | None] = {
    "tiny": None,
    "small": (512, 2048, 8, 8, 32_000),
    "medium": (768, 3072, 12, 12, 32_000),
}


def make_model(size: str, tiny_folder: Path, work: Path) -> Path:
    """The model folder of a size: the tiny model's tokenizer and chat template, random weights."""
    shape = SIZES[size]
    if shape is None:
        return tiny_folder / "partial"
    from transformers import AutoConfig, LlamaForCausalLM

    hidden, intermediate, layers, heads, vocab = shape
    folder = work / f"model-{size}"
    config = AutoConfig.from_pretrained(tiny_folder / "partial")
    config.update({"hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
                   "num_attention_heads": heads, "num_key_value_heads": heads, "head_dim": hidden // heads,
                   "vocab_size": vocab})  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny_folder / "partial" / name, folder / name)
    return folder


def run(size: str, model: Path, technique: str, method: str, steps: int, work: Path) -> dict[str, Any]:
    from workers.training.spec import JobSpec
    from workers.training.train import estimate_spec

    name = f"{size}-{technique}-{method}"
    spec = {"technique": technique, "model": str(model), "dataset": str(DEMO / DATA[technique]),
            "output_dir": str(work / name), "training": {"method": method, "max_steps": steps, "save_steps": 10_000},
            "tracking": {"enabled": False}}  # fmt: skip
    path = work / f"{name}.json"
    path.write_text(json.dumps(spec))
    planned = estimate_spec(JobSpec.from_dict(spec), gpu=False)
    estimate = planned["estimate"]
    wall, peak, code = peak_rss(
        [sys.executable, "-m", "workers.training", "run", str(path)], work / f"{name}.log"
    )
    if code:
        print((work / f"{name}.log").read_text()[-3000:], file=sys.stderr)
    return {
        "size": size, "technique": technique, "method": method, "parameters": planned.get("parameters"),
        "exit_code": code, "wall_s": round(wall, 1), "peak_rss_gb": round(peak, 3),
        "estimated_gb": estimate["total_gb"], "estimate_over_peak": round(estimate["total_gb"] / peak, 3) if peak else None,
        "parts_gb": {k: estimate[k] for k in ("weights_gb", "gradients_gb", "optimizer_gb", "activations_gb")},
        "batch_size": planned.get("hparams", {}).get("batch_size"), "max_length": planned.get("hparams", {}).get("max_length"),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="tiny,small,medium")
    parser.add_argument("--techniques", default="sft,dpo,rlvr")
    parser.add_argument("--methods", default="full,lora")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "memory.json"))
    args = parser.parse_args()
    tiny_folder = ROOT / "var" / "models" / "atelier-tiny"
    tiny.build(tiny_folder)
    rows = []
    with tempfile.TemporaryDirectory(prefix="atelier-memory-") as folder:
        work = Path(folder)
        for size in args.sizes.split(","):
            model = make_model(size, tiny_folder, work)
            for technique in args.techniques.split(","):
                for method in args.methods.split(","):
                    row = run(size, model, technique, method, args.steps, work)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(f"\n{'size':7} {'technique':9} {'method':6} {'est GB':>7} {'peak GB':>8} {'est/peak':>8}")
    for r in rows:
        print(f"{r['size']:7} {r['technique']:9} {r['method']:6} {r['estimated_gb']:7.3f} {r['peak_rss_gb']:8.3f} "
              f"{r['estimate_over_peak'] or 0:8.3f}{'' if not r['exit_code'] else '  (failed)'}")  # fmt: skip
    Path(args.out).write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
