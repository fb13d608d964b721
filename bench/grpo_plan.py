"""GRPO's automatic plan on the tiny model: RLVR (exact-match reward) of the partly trained tiny model on
200 demo reverse prompts through `python -m workers.training run`, with nothing set but the seed, against
the plan before it (one pass over the prompts in batches of 16 answers at a LoRA rate of 3e-4, set by hand
here only to measure the change). For each run: the reward's mean over the first and the second half of
the logged steps (does the reward rise?), the held-out exact match before → after on the demo's 50
held-out prompts (workers.training.heldout, the number the job page shows), steps and wall time. Early
stopping is on, as in the wizard.

    python bench/grpo_plan.py [--seeds 42,7,1]

Prints a table and writes bench/results/grpo_plan.json. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cli import run_spec  # noqa: E402  (bench/cli.py)

from workers.training import tiny  # noqa: E402

PLANS: dict[str, dict[str, Any]] = {
    "automatic": {},
    "before": {"batch_size": 16, "epochs": 1, "learning_rate": 3e-4},
}


def run(
    folder: Path, model: Path, train: Path, name: str, seed: int, training: dict[str, Any]
) -> dict[str, Any]:
    out = folder / f"{name}-{seed}"
    spec = {"technique": "rlvr", "model": str(model), "dataset": str(train),
            "eval_dataset": str(tiny.DEMO / "reverse" / "eval.jsonl"), "output_dir": str(out),
            "training": {"method": "lora", "seed": seed, **training}, "tracking": {"enabled": False}}  # fmt: skip
    events, wall = run_spec(spec, folder, out.name)
    hparams = next(e for e in events if e["event"] == "configured")["hparams"]
    rewards = [
        e["metrics"]["reward"] for e in events if e["event"] == "step" and "reward" in e.get("metrics", {})
    ]
    half = len(rewards) // 2
    m = events[-1]["metrics"]
    return {
        "plan": name, "seed": seed, "wall_seconds": round(wall, 1), "planned_steps": hparams["max_steps"],
        "batch_size": hparams["batch_size"], "learning_rate": hparams["learning_rate"], "steps": m["global_step"],
        "best_step": m["best_step"], "reward_first_half": round(sum(rewards[:half]) / max(1, half), 3),
        "reward_second_half": round(sum(rewards[half:]) / max(1, len(rewards) - half), 3),
        "heldout_before": m["heldout_before"], "heldout_after": m["heldout_after"], "verdict": m["verdict"],
        "rewards": [round(r, 3) for r in rewards],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="42,7,1")
    args = parser.parse_args()
    models = Path(os.environ.get("ATELIER_TEST_DATA_DIR", ROOT / "var" / "test")) / "models" / "atelier-tiny"
    tiny.build(models)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train = folder / "rlvr.jsonl"
        rows = tiny.read_jsonl(tiny.DEMO / "reverse" / "rlvr.jsonl")[:200]
        train.write_text("".join(json.dumps(r) + "\n" for r in rows))
        for seed in (int(s) for s in args.seeds.split(",")):
            for name, training in PLANS.items():
                results.append(run(folder, models / "partial", train, name, seed, training))
                r = results[-1]
                print(f"{r['plan']:<10}{r['seed']:>5}{r['wall_seconds']:>8}{r['steps']:>6}/{r['planned_steps']:<5}"
                      f"{r['batch_size']:>4}{r['learning_rate']:>8.0e}  reward {r['reward_first_half']:.2f} → "
                      f"{r['reward_second_half']:.2f}  held-out {r['heldout_before']:.2f} → {r['heldout_after']:.2f}",
                      flush=True)  # fmt: skip
    summary = {
        name: {
            "reward_rose": sum(r["reward_second_half"] > r["reward_first_half"] for r in results if r["plan"] == name),
            "heldout_above_start": sum(r["heldout_after"] > r["heldout_before"] for r in results if r["plan"] == name),
            "runs": sum(r["plan"] == name for r in results),
        }
        for name in PLANS
    }  # fmt: skip
    print(json.dumps(summary))
    out = ROOT / "bench" / "results" / "grpo_plan.json"
    out.write_text(json.dumps({"what": "RLVR of the partial tiny model, 200 demo prompts, automatic plan against the "
                               "plan before it", "machine": f"{os.cpu_count()} CPU cores", "summary": summary,
                               "runs": results}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
