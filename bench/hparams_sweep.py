"""Learning-rate (and GRPO sampling) sweep on the built-in tiny model: the measurements behind the tiny
model's values in workers/training/hparams.py.

Each point trains the partly trained tiny model ("partial": right on about a third of the reverse task)
through the real runner (in this process, tracking off) on a subset of the demo data, with the
learning rate (and for GRPO the answers per prompt) set by the sweep and everything else automatic.
Every kept checkpoint is then scored FROM THE OUTSIDE, the way the automatic-path tests do: plain
transformers + PEFT load the adapter or model, greedy answers to the 50 held-out prompts of
assets/demo/reverse/eval.jsonl are graded by workers.training.graders.exact_match, and for DPO the
preference accuracy on held-out pairs made from those 50 words (log-likelihood of the answer > that of a
near miss) is measured too. So each
point gives a learning curve, not one end number; two seeds where the CPU allows.

    python bench/hparams_sweep.py [--only sft-lora,dpo-lora,...] [--seeds 42,7]

Writes bench/results/hparams_sweep.json (points are appended as they finish, so a stopped sweep keeps
what it measured). Never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from workers.training.folder import JobFolder

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workers.training import tiny  # noqa: E402

REVERSE = tiny.DEMO / "reverse"
RESULTS = ROOT / "bench" / "results" / "hparams_sweep.json"

# (group, technique, method, rows, learning rates, extra spec training, params, seeds limited to)
GROUPS: dict[str, dict[str, Any]] = {
    # 400 rows, the size the automatic-path test uploads; 6 epochs so the curve shows where it saturates.
    "sft-lora": {"technique": "sft", "method": "lora", "data": "sft.jsonl", "rows": 400,
                 "lrs": [1e-3, 2e-3, 5e-3], "epochs": 6},
    "sft-lora-1000": {"technique": "sft", "method": "lora", "data": "sft.jsonl", "rows": 1000,
                      "lrs": [2e-3, 5e-3, 1e-2], "epochs": 3},
    "sft-full": {"technique": "sft", "method": "full", "data": "sft.jsonl", "rows": 400,
                 "lrs": [3e-4, 1e-3], "epochs": 6, "seeds": 1},
    # The whole demo file (4,100 rows), 1.5 epochs: how much of the old 3-epoch plan was needed.
    "sft-lora-big": {"technique": "sft", "method": "lora", "data": "sft.jsonl", "rows": 4100,
                     "lrs": [5e-3], "epochs": 1.5, "seeds": 1},
    "dpo-lora": {"technique": "dpo", "method": "lora", "data": "dpo.jsonl", "rows": 400,
                 "lrs": [5e-4, 2e-3, 5e-3], "epochs": 3},
    # Full RLVR at the automatic temperature (0.7 on the tiny model), lower rates.
    "rlvr-full-t07": {"technique": "rlvr", "method": "full", "data": "rlvr.jsonl", "rows": 200,
                      "lrs": [3e-5, 1e-4], "steps": 100, "params": {"num_generations": 8, "temperature": 0.7},
                      "seeds": 1},
    "dpo-full": {"technique": "dpo", "method": "full", "data": "dpo.jsonl", "rows": 400,
                 "lrs": [5e-5, 2e-4], "epochs": 3, "seeds": 1},
    "rlvr-lora": {"technique": "rlvr", "method": "lora", "data": "rlvr.jsonl", "rows": 200,
                  "lrs": [3e-4, 1e-3, 3e-3], "steps": 100, "params": {"num_generations": 8}},
    "rlvr-lora-t07": {"technique": "rlvr", "method": "lora", "data": "rlvr.jsonl", "rows": 200,
                      "lrs": [3e-4], "steps": 100, "params": {"num_generations": 8, "temperature": 0.7}},
    "rlvr-lora-g4": {"technique": "rlvr", "method": "lora", "data": "rlvr.jsonl", "rows": 200,
                     "lrs": [3e-4], "steps": 100, "params": {"num_generations": 4}, "seeds": 1},
    "rlvr-full": {"technique": "rlvr", "method": "full", "data": "rlvr.jsonl", "rows": 200,
                  "lrs": [1e-4, 2e-4], "steps": 100, "params": {"num_generations": 8}, "seeds": 1},
}  # fmt: skip


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def held_out_pairs(evaluation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Preference pairs on the held-out words: the right answer against a near miss with its two middle
    letters swapped (dpo.jsonl's own rejected answers, the word unchanged or its end letters swapped, the
    partly trained model already tells apart on every held-out word)."""
    pairs = []
    for row in evaluation:
        letters = row["answer"].split()
        i = len(letters) // 2
        near = [*letters[: i - 1], letters[i], letters[i - 1], *letters[i + 1 :]]
        if near != letters:
            pairs.append({"prompt": row["prompt"], "chosen": [{"role": "assistant", "content": row["answer"]}],
                          "rejected": [{"role": "assistant", "content": " ".join(near)}]})  # fmt: skip
    return pairs


def load(artifact: Path, base: Path) -> tuple[Any, Any]:
    """An adapter (merged onto the base its adapter_config.json names) or a full model, by plain
    transformers + PEFT."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = artifact / "adapter_config.json"
    if config.exists():
        from peft import PeftModel

        named = json.loads(config.read_text())["base_model_name_or_path"]
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(named), artifact)
        model = model.merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(artifact)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.padding_side = "left"
    return model.eval(), tokenizer


def greedy(
    model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], max_new_tokens: int = 24
) -> list[str]:
    import torch

    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    return [
        t.strip()
        for t in tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    ]


def exact_match(model: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> float:
    from workers.training.graders import exact_match as grade

    answers = greedy(model, tokenizer, [r["prompt"] for r in rows])
    return sum(grade(answers, [r["answer"] for r in rows])) / len(rows)


def preference_accuracy(model: Any, tokenizer: Any, pairs: list[dict[str, Any]]) -> float:
    """Share of pairs whose chosen answer the model finds likelier than the rejected one."""
    import torch

    def logp(prompt: list[dict[str, str]], answer: list[dict[str, str]]) -> float:
        head = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        whole = tokenizer.apply_chat_template(prompt + answer, tokenize=False)
        start = len(tokenizer(head, add_special_tokens=False)["input_ids"])
        ids = torch.tensor([tokenizer(whole, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            logits = model(ids).logits[0, :-1].log_softmax(-1)
        targets = ids[0, 1:]
        return float(logits[start - 1 :].gather(1, targets[start - 1 :, None]).sum())

    wins = sum(logp(p["prompt"], p["chosen"]) > logp(p["prompt"], p["rejected"]) for p in pairs)
    return wins / len(pairs)


def score(
    artifact: Path, base: Path, evaluation: list[dict[str, Any]], pairs: list[dict[str, Any]] | None
) -> dict[str, float]:
    model, tokenizer = load(artifact, base)
    result = {"exact_match": exact_match(model, tokenizer, evaluation)}
    if pairs:
        result["preference_accuracy"] = preference_accuracy(model, tokenizer, pairs)
    return result


def keep_every_checkpoint() -> None:
    """The runner keeps two checkpoints; the sweep scores them all (its learning curve)."""
    from workers.training.train import Context

    original = Context.trainer_args

    def trainer_args(self: Any) -> dict[str, Any]:
        return {**original(self), "save_total_limit": None}

    Context.trainer_args = trainer_args  # type: ignore[method-assign]


def run_point(
    group: str, g: dict[str, Any], lr: float, seed: int, base: Path, evaluation: list[dict[str, Any]]
) -> dict[str, Any]:
    from workers.training.events import read_events
    from workers.training.train import run_and_report

    source = _rows(REVERSE / g["data"])
    pairs = held_out_pairs(evaluation) if g["technique"] == "dpo" else None
    rows = source[: g["rows"]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        training: dict[str, Any] = {"method": g["method"], "learning_rate": lr, "seed": seed}
        if "steps" in g:
            training["max_steps"] = g["steps"]
        else:
            training["epochs"] = g["epochs"]

        spec = {"technique": g["technique"], "model": str(base), "dataset": str(folder / "train.jsonl"),
                "output_dir": str(folder / "out"), "tracking": {"enabled": False}, "params": g.get("params", {}),
                "training": training}  # fmt: skip
        steps_guess = g.get("steps") or int(g["rows"] * g["epochs"] / 16 + 0.999)
        spec["training"]["save_steps"] = max(5, steps_guess // 8)
        (folder / "spec.json").write_text(json.dumps(spec))
        started = time.monotonic()
        code = run_and_report(folder / "spec.json")
        wall = time.monotonic() - started
        events = read_events(JobFolder(folder / "out").events)
        if code != 0:
            return {"group": group, "lr": lr, "seed": seed, "failed": events[-1]}
        configured = next(e for e in events if e["event"] == "configured")["hparams"]
        rewards = [
            e["metrics"]["reward"] for e in events if e["event"] == "step" and "reward" in e["metrics"]
        ]
        curve = []
        for checkpoint in sorted(
            JobFolder(folder / "out").checkpoints.glob("checkpoint-*"),
            key=lambda p: int(p.name.split("-")[1]),
        ):
            curve.append(
                {"step": int(checkpoint.name.split("-")[1]), **score(checkpoint, base, evaluation, pairs)}
            )
        kind = "model" if g["method"] == "full" else "adapter"
        final = score(folder / "out" / kind, base, evaluation, pairs)
    tenth = max(1, len(rewards) // 10)
    return {
        "group": group, "technique": g["technique"], "method": g["method"], "rows": len(rows), "lr": lr,
        "seed": seed, "params": g.get("params", {}), "max_steps": configured["max_steps"],
        "batch_size": configured["batch_size"], "wall_s": round(wall, 1), "curve": curve, "final": final,
        "reward_first_tenth": sum(rewards[:tenth]) / tenth if rewards else None,
        "reward_last_tenth": sum(rewards[-tenth:]) / tenth if rewards else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(GROUPS))
    parser.add_argument("--seeds", default="42,7")
    args = parser.parse_args()
    base = ROOT / "var" / "test" / "models" / "atelier-tiny" / "partial"
    if not (base / "config.json").exists():
        tiny.build(base.parent)
    keep_every_checkpoint()
    evaluation = _rows(REVERSE / "eval.jsonl")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"points": []}
    # The partly trained model before any training, on the same held-out rows and pairs.
    results["start"] = score(base, base, evaluation, held_out_pairs(evaluation))
    results["about"] = __doc__.split("\n\n")[0]
    print("start", results["start"], file=sys.stderr, flush=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    for group in args.only.split(","):
        g = GROUPS[group]
        for lr in g["lrs"]:
            for seed in seeds[: g.get("seeds", len(seeds))]:
                point = run_point(group, g, lr, seed, base, evaluation)
                print(
                    json.dumps({k: v for k, v in point.items() if k != "curve"}), file=sys.stderr, flush=True
                )
                print(
                    "  curve",
                    [
                        (c["step"], round(c["exact_match"], 2), round(c.get("preference_accuracy", -1), 2))
                        for c in point.get("curve", [])
                    ],
                    file=sys.stderr,
                    flush=True,
                )
                results["points"] = [p for p in results["points"]
                                     if (p["group"], p["lr"], p["seed"]) != (group, lr, seed)] + [point]  # fmt: skip
                RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
