"""Early stopping on the demo SFT: LoRA of the partly trained tiny model on the reverse demo data with
the automatic settings (nothing set but the method), split as the wizard splits it (10% held out, the
same seed), through `python -m workers.training run`: early stopping on (the default) against off.
Wall time of each process (start-up included), steps trained, the best step, and the final held-out score
(workers.training.heldout on the held-out selection, the number the job page and the report show).

    python bench/early_stopping.py [--rows N]   (--rows: train on the first N rows of the split only)

The issue's goal: early stopping at least halves the wall time at the same final score. Prints a table
and writes bench/results/early_stopping.json. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cli import run_spec  # noqa: E402  (bench/cli.py)

from workers.training import data as data_module  # noqa: E402
from workers.training import tiny  # noqa: E402


def split(folder: Path, rows: int | None) -> tuple[Path, Path, int]:
    """The wizard's automatic split (apps/jobs/wizard.py materialize): shuffle with seed 0, hold 10%."""
    all_rows = tiny.read_jsonl(tiny.DEMO / "reverse" / "sft.jsonl")
    rng = random.Random(0)  # noqa: S311 - a reproducible split, not a secret
    rng.shuffle(all_rows)
    held = len(all_rows) // 10
    evaluation = [e for e in map(data_module.eval_row, all_rows[:held]) if e is not None]
    train = all_rows[held:][:rows] if rows else all_rows[held:]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (folder / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evaluation))
    return folder / "train.jsonl", folder / "eval.jsonl", len(train)


def run(folder: Path, model: Path, train: Path, evaluation: Path, early_stopping: bool, name: str,
        **training: object) -> dict:  # fmt: skip
    out = folder / name
    spec = {"technique": "sft", "model": str(model), "dataset": str(train), "eval_dataset": str(evaluation),
            "output_dir": str(out), "training": {"method": "lora", "early_stopping": early_stopping, **training},
            "tracking": {"enabled": False}}  # fmt: skip
    events, wall = run_spec(spec, folder, out.name)
    configured = next(e for e in events if e["event"] == "configured")
    m = events[-1]["metrics"]
    return {
        "name": name, "early_stopping": early_stopping, "wall_seconds": round(wall, 1), "planned_steps": configured["hparams"]["max_steps"],
        "steps": m["global_step"], "best_step": m["best_step"], "learning_rate": configured["hparams"]["learning_rate"],
        "heldout_before": m["heldout_before"], "heldout_after": m["heldout_after"],
        "heldout_interval_after": m["heldout_interval_after"], "heldout_rows": m["heldout_rows"],
        "stopped_early": m["stopped_early"], "verdict": m["verdict"],
        "heldout_curve": [(e["step"], e["score"]) for e in events if e["event"] == "heldout"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=None, help="train on the first N rows of the split only")
    args = parser.parse_args()
    models = Path(os.environ.get("ATELIER_TEST_DATA_DIR", ROOT / "var" / "test")) / "models" / "atelier-tiny"
    tiny.build(models)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train, evaluation, n = split(folder, args.rows)
        on = run(folder, models / "partial", train, evaluation, True, "on")
        off = run(folder, models / "partial", train, evaluation, False, "off")
        # Where the issue started: the automatic plan of then (three epochs of every row: 692 steps,
        # the learning rate it had), no early stopping. Set by hand here only to measure the change.
        before = run(folder, models / "partial", train, evaluation, False, "issue-start",
                     max_steps=692, learning_rate=5e-3)  # fmt: skip
    ratio = on["wall_seconds"] / off["wall_seconds"]
    ratio_start = on["wall_seconds"] / before["wall_seconds"]
    result = {
        "what": "demo SFT (LoRA) of the partial tiny model on reverse, automatic settings, wizard split",
        "train_rows": n, "subset": args.rows is not None, "machine": f"{os.cpu_count()} CPU cores, shared",
        "on": on, "off": off, "issue_start": before, "wall_ratio_on_over_off": round(ratio, 3),
        "wall_ratio_on_over_issue_start": round(ratio_start, 3),
        "goal_met_against_off": ratio <= 0.5 and on["heldout_after"] >= off["heldout_after"] - 0.02,
        "goal_met_against_issue_start": ratio_start <= 0.5 and on["heldout_after"] >= before["heldout_after"] - 0.02,
    }  # fmt: skip
    print(f"{'run':<14}{'wall s':>8}{'planned':>9}{'steps':>7}{'best':>6}{'before':>8}{'after':>8}")
    for r in (on, off, before):
        print(f"{r['name']:<14}{r['wall_seconds']:>8}{r['planned_steps']:>9}{r['steps']:>7}"
              f"{r['best_step'] or '-':>6}{r['heldout_before']:>8.2f}{r['heldout_after']:>8.2f}")  # fmt: skip
    print(
        f"wall time on/off (same plan): {ratio:.2f}; on/issue start (692 steps, no stopping): {ratio_start:.2f}"
    )
    out = ROOT / "bench" / "results" / "early_stopping.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
