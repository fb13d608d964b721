"""Batched generation against one prompt at a time, on the built-in tiny model: the evaluation's
answers come from workers.training.generation.generate with left-padded batches. Samples/s of both on the
same held-out prompts in the same process, and their ratio. Prints a table and writes
bench/results/evaluation.json (or --out).

    python bench/evaluation.py [--rows 50] [--batch 16] [--max-new-tokens 24] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.training import tiny
from workers.training.data import read_rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--model", default=None, help="model folder (default: the tiny model, partly trained)"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "evaluation.json"))
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workers.training.__main__ import default_models_dir
    from workers.training.generation import generate

    folder = Path(args.model or default_models_dir() / "atelier-tiny" / "partial")
    if not folder.exists():
        print(f"No model at {folder}: run `python -m workers.training build-tiny` first.", file=sys.stderr)
        return 2
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prompts = [r["prompt"] for r in read_rows(tiny.DEMO / "reverse" / "eval.jsonl")][: args.rows]
    generate(model, tokenizer, prompts[:2], max_new_tokens=4, batch_size=2)  # warm-up

    def timed(batch_size: int) -> tuple[float, list[str]]:
        began = time.perf_counter()
        answers = generate(
            model, tokenizer, prompts, max_new_tokens=args.max_new_tokens, batch_size=batch_size
        )
        return time.perf_counter() - began, answers

    runs = {"one_at_a_time": [], "batched": []}
    answers = {}
    for _ in range(args.repeats):  # interleaved, so drift in the machine's speed hits both alike
        for name, size in (("one_at_a_time", 1), ("batched", args.batch)):
            seconds, out = timed(size)
            runs[name].append(seconds)
            answers[name] = out
    best = {name: min(times) for name, times in runs.items()}
    same = sum(a == b for a, b in zip(answers["one_at_a_time"], answers["batched"], strict=True))
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "model": str(folder.name),
        "rows": len(prompts), "batch": args.batch, "max_new_tokens": args.max_new_tokens, "repeats": args.repeats,
        "seconds": runs,
        "samples_per_second": {name: round(len(prompts) / s, 2) for name, s in best.items()},
        "ratio_batched_over_one_at_a_time": round(best["one_at_a_time"] / best["batched"], 2),
        "identical_answers": f"{same}/{len(prompts)}",
    }  # fmt: skip
    print(f"{'mode':<16}{'best s':>10}{'samples/s':>12}")
    for name, s in best.items():
        print(f"{name:<16}{s:>10.3f}{result['samples_per_second'][name]:>12.2f}")
    print(
        f"batched / one at a time: {result['ratio_batched_over_one_at_a_time']}x; identical greedy answers: {result['identical_answers']}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
