"""Training throughput and memory: Atelier's CLI against a bare TRL script on the same spec.

For each technique (SFT, DPO, RLVR) on the built-in tiny model: steps/s and tokens/s of the training
loop through `python -m workers.training run`, and of a bare TRL script given the same model, data and
hyperparameters (the ratio is the cost of Atelier's callbacks, events and checks); the wall time of each
process (start-up included); and the memory estimate against the measured peak RSS.

`--first-step` measures instead how long a 40-step LoRA SFT job takes from the command's start to its
first training step on datasets of 4,000, 40,000 and 200,000 rows (the demo's rows, each made distinct):
the time a person waits before the job page shows progress, which must not grow with the dataset.

    python bench/training.py [--quick]      (--quick: 30 steps each, within 3 minutes on 2 cores)
    python bench/training.py --first-step [--label after]

Prints a table and writes bench/results/training.json. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from workers.training.folder import JobFolder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rss import peak_rss  # noqa: E402
from workers.training import tiny  # noqa: E402
from workers.training.events import read_events  # noqa: E402

DEMO = tiny.DEMO / "reverse"
DATA = {"sft": "sft.jsonl", "dpo": "dpo.jsonl", "rlvr": "rlvr.jsonl"}

BARE = r"""
import json, sys, time
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
spec = json.load(open(sys.argv[1])); h = json.load(open(sys.argv[2]))
tok = AutoTokenizer.from_pretrained(spec["model"]); model = AutoModelForCausalLM.from_pretrained(spec["model"])
rows = [json.loads(l) for l in open(spec["dataset"]) if l.strip()]
common = dict(output_dir=sys.argv[3], max_steps=h["max_steps"], per_device_train_batch_size=h["batch_size"],
              gradient_accumulation_steps=h["gradient_accumulation"], learning_rate=h["learning_rate"],
              lr_scheduler_type="cosine", warmup_steps=max(1, h["max_steps"] // 20), logging_steps=h["logging_steps"],
              save_strategy="no", report_to="none", bf16=False, seed=h["seed"], disable_tqdm=True)
technique = spec["technique"]
if technique == "sft":
    from trl import SFTConfig, SFTTrainer
    trainer = SFTTrainer(model=model, args=SFTConfig(**common, max_length=h["max_length"], assistant_only_loss=True),
                         train_dataset=Dataset.from_list(rows), processing_class=tok)
elif technique == "dpo":
    from trl import DPOConfig, DPOTrainer
    trainer = DPOTrainer(model=model, args=DPOConfig(**common, max_length=h["max_length"], loss_type=["sigmoid", "sft"],
                         loss_weights=[1.0, 1.0]), train_dataset=Dataset.from_list(rows), processing_class=tok)
else:
    from trl import GRPOConfig, GRPOTrainer
    def exact(completions, answer, **_):
        return [float(c[0]["content"].strip() == a) for c, a in zip(completions, answer)]
    trainer = GRPOTrainer(model=model, reward_funcs=[exact], args=GRPOConfig(**common, num_generations=4,
                          max_completion_length=16, beta=0.0), train_dataset=Dataset.from_list(rows), processing_class=tok)
result = trainer.train()
print(json.dumps({"train_runtime": result.metrics["train_runtime"], "steps": result.global_step}))
"""


def _peak_rss(command: list[str], out: Path) -> tuple[float, float, str]:
    """Run a command; (wall seconds, peak RSS in MB of it and its children, stdout)."""
    wall, peak, _ = peak_rss(command, out, cwd=ROOT, with_stderr=False)
    return wall, peak / 2**20, out.read_text()


def bench(technique: str, model: Path, steps: int, work: Path) -> dict:
    spec = {"technique": technique, "model": str(model / "partial"), "dataset": str(DEMO / DATA[technique]),
            "output_dir": str(work / technique), "training": {"method": "full", "max_steps": steps, "save_steps": 10_000},
            "tracking": {"enabled": False}}  # fmt: skip
    spec_path = work / f"{technique}.json"
    spec_path.write_text(json.dumps(spec))
    cli_wall, cli_rss, _ = _peak_rss(
        [sys.executable, "-m", "workers.training", "run", str(spec_path)], work / f"{technique}.cli"
    )
    events = read_events(JobFolder(work / technique).events)
    hparams = next(e["hparams"] for e in events if e["event"] == "configured")
    final = next(
        e["metrics"] for e in reversed(events) if e["event"] == "step" and "train_runtime" in e["metrics"]
    )
    tokens = max((e["metrics"].get("num_tokens", 0) for e in events if e["event"] == "step"), default=0)
    (work / f"{technique}.h.json").write_text(json.dumps(hparams))
    bare_spec = {**spec, "model": spec["model"]}
    (work / f"{technique}.bare.json").write_text(json.dumps(bare_spec))
    bare_wall, bare_rss, bare_out = _peak_rss(
        [
            sys.executable,
            "-c",
            BARE,
            str(work / f"{technique}.bare.json"),
            str(work / f"{technique}.h.json"),
            str(work / "bare"),
        ],
        work / f"{technique}.bare",
    )
    bare = json.loads(bare_out.strip().splitlines()[-1])
    from workers.training.spec import JobSpec
    from workers.training.train import estimate_spec

    estimate = estimate_spec(JobSpec.from_dict(spec), gpu=False)["estimate"]
    cli_sps = steps / final["train_runtime"]
    bare_sps = bare["steps"] / bare["train_runtime"]
    return {
        "technique": technique, "steps": steps,
        "cli_steps_per_s": round(cli_sps, 2), "bare_steps_per_s": round(bare_sps, 2), "ratio": round(cli_sps / bare_sps, 3),
        "cli_tokens_per_s": round(tokens / final["train_runtime"], 1) if tokens else None,
        "cli_wall_s": round(cli_wall, 1), "bare_wall_s": round(bare_wall, 1),
        "estimated_gb": estimate["total_gb"], "cli_peak_rss_gb": round(cli_rss / 1024, 3),
        "bare_peak_rss_gb": round(bare_rss / 1024, 3),
    }  # fmt: skip


def first_step(model: Path, rows: int, work: Path) -> dict:
    """Seconds from launching a 40-step LoRA SFT job on `rows` rows to its first step, and what it did
    before: the phases between the CLI's events."""
    import time

    demo = [json.loads(line) for line in (DEMO / DATA["sft"]).read_text().splitlines() if line.strip()]
    data = work / f"first-{rows}.jsonl"
    with data.open("w") as out:
        for i in range(rows):
            row = demo[i % len(demo)]
            prompt, answer = row["messages"][0]["content"], row["messages"][1]["content"]
            out.write(json.dumps({"messages": [{"role": "user", "content": f"{prompt} ({i})"},
                                               {"role": "assistant", "content": answer}]}) + "\n")  # fmt: skip
    spec = {"technique": "sft", "model": str(model / "partial"), "dataset": str(data),
            "output_dir": str(work / f"first-{rows}"), "tracking": {"enabled": False},
            "training": {"method": "lora", "max_steps": 40, "save_steps": 10_000, "early_stopping": False}}  # fmt: skip
    spec_path = work / f"first-{rows}.json"
    spec_path.write_text(json.dumps(spec))
    t0 = time.time()
    wall, _, _ = _peak_rss(
        [sys.executable, "-m", "workers.training", "run", str(spec_path)], work / f"first-{rows}.out"
    )
    events = read_events(JobFolder(work / f"first-{rows}").events)
    at = {e["event"]: e["time"] for e in reversed(events)}  # each event's first time
    if "step" not in at:
        raise RuntimeError(f"{rows} rows: no step ({[e for e in events if e['event'] == 'failed']})")
    return {
        "rows": rows, "to_first_step_s": round(at["step"] - t0, 1),
        "to_configured_s": round(at["configured"] - t0, 1), "wall_s": round(wall, 1),
        "trained_rows": next(e.get("rows") for e in events if e["event"] == "configured"),
    }  # fmt: skip


def first_steps(model: Path, label: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        found = [first_step(model, rows, Path(folder)) for rows in (4_000, 40_000, 200_000)]
    print(f"{'rows':>8} {'to first step s':>15} {'to configured s':>15} {'wall s':>7} {'rows trained':>12}")
    for r in found:
        print(f"{r['rows']:>8} {r['to_first_step_s']:>15} {r['to_configured_s']:>15} {r['wall_s']:>7} {r['trained_rows']:>12}")  # fmt: skip
    results = json.loads(out.read_text()) if out.exists() else {}
    results.setdefault("first_step", {})[label] = found
    out.write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="30 steps each")
    parser.add_argument("--first-step", action="store_true", help="launch → first step at 4k, 40k, 200k rows")
    parser.add_argument("--label", default="after", help="the --first-step run's name (before, after)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "training.json"))
    args = parser.parse_args()
    steps = 30 if args.quick else args.steps
    model = Path(os.environ.get("ATELIER_DATA_DIR", ROOT / "var")) / "models" / "atelier-tiny"
    tiny.build(model)
    if args.first_step:
        first_steps(model, args.label, Path(args.out))
        return
    with tempfile.TemporaryDirectory() as folder:
        rows = [bench(t, model, steps, Path(folder)) for t in ("sft", "dpo", "rlvr")]
    header = f"{'technique':<9} {'steps':>5} {'CLI steps/s':>11} {'bare steps/s':>12} {'ratio':>6} {'CLI tok/s':>9} {'CLI wall s':>10} {'bare wall s':>11} {'est GB':>7} {'CLI RSS GB':>10}"
    print(header)
    for r in rows:
        print(f"{r['technique']:<9} {r['steps']:>5} {r['cli_steps_per_s']:>11} {r['bare_steps_per_s']:>12} {r['ratio']:>6} "
              f"{r['cli_tokens_per_s'] or '-':>9} {r['cli_wall_s']:>10} {r['bare_wall_s']:>11} {r['estimated_gb']:>7} {r['cli_peak_rss_gb']:>10}")  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    kept = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    Path(args.out).write_text(
        json.dumps(
            {"steps": steps, "rows": rows} | {k: v for k, v in kept.items() if k == "first_step"}, indent=2
        )
    )


if __name__ == "__main__":
    main()
