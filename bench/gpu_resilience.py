"""The resilient mode's CUDA path on a GPU: replicas of the tiny model train on the GPU (fp32 weights,
gloo averaging CUDA gradients through the host), one replica is SIGKILLed every --kill-every steps and
replaced by a warm spare that heals from a peer (CUDA state sent over torchft's HTTP transport).

For full fine-tuning and LoRA: the replicas' device, goodput, recovery times, heals, whether the job
restarted and whether every replica ended with identical parameters. Needs a CUDA GPU, torch,
transformers, peft and torchft (no TRL, datasets or MLflow: the resilient loop does not use them).
Prints a table and writes bench/results/gpu_resilience.json (or --out).

    python bench/gpu_resilience.py [--replicas 2] [--steps 200] [--kill-every 50] [--model FOLDER]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from workers.training.folder import JobFolder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workers.training import tiny  # noqa: E402
from workers.training.events import read_events  # noqa: E402
from workers.training.resilient import committed_steps  # noqa: E402


def run(method: str, args: argparse.Namespace, folder: Path) -> dict[str, object]:
    spec = {
        "technique": "sft", "model": str(args.model), "dataset": str(tiny.DEMO / "reverse" / "sft.jsonl"),
        "output_dir": str(folder / "out"), "tracking": {"enabled": False},
        "training": {"method": method, "max_steps": args.steps, "batch_size": args.batch,
                     "learning_rate": 1e-3 if method == "full" else 5e-3, "save_steps": 100_000},
        "resilience": {"min_replicas": 1, "max_replicas": args.replicas},
    }  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "workers.training", "resilient", str(folder / "spec.json"), "--replicas",
         str(args.replicas), "--kill-every", str(args.kill_every), "--spares", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=args.timeout,
    )  # fmt: skip
    wall = time.monotonic() - started
    events = read_events(JobFolder(folder / "out").events)
    steps = [e["step"] for e in committed_steps(events)]
    ended = [e.get("params_sha256") for e in events if e["event"] in ("finished", "replica_done")
             and e.get("step", args.steps) == args.steps and e.get("params_sha256")]  # fmt: skip
    summary: dict[str, Any] = next((e for e in reversed(events) if e["event"] == "goodput"), {})
    return {
        "method": method, "exit_code": done.returncode, "wall_s": round(wall, 2),
        "devices": sorted({e.get("device", "?") for e in events if e["event"] == "replica_ready"}),
        "faults": sum(1 for e in events if e["event"] == "fault_injected"),
        "heals": sum(1 for e in events if e["event"] == "replica_healed"),
        "never_restarted": sum(1 for e in events if e["event"] == "lighthouse") == 1
        and steps == list(range(1, args.steps + 1)),
        "replicas_at_end": len(ended), "identical_params": len(ended) >= 2 and len(set(ended)) == 1,
        "goodput": summary.get("goodput"), "normal_step_s": summary.get("normal_step_seconds"),
        "recovery_s_median": summary.get("recovery_seconds_median"),
        "recovery_s_max": summary.get("recovery_seconds_max"),
        "final_loss": next((e["metrics"]["train_loss"] for e in events if e["event"] == "finished"), None),
        "stderr_tail": done.stderr[-1500:] if done.returncode else "",
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--kill-every", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=240)
    parser.add_argument("--model", type=Path, default=ROOT / "var" / "models" / "atelier-tiny" / "base")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_resilience.json")
    parser.add_argument("--events-dir", type=Path, help="copy each run's events.jsonl here")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("No CUDA GPU: this benchmark checks the GPU path.", file=sys.stderr)
        return 2
    result: dict[str, object] = {
        "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "python": platform.python_version(),
        "replicas": args.replicas, "steps": args.steps, "kill_every": args.kill_every, "batch": args.batch, "runs": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("full", "lora"):
            row = run(method, args, Path(tmp) / method)
            if args.events_dir:
                args.events_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(
                    JobFolder(Path(tmp) / method / "out").events, args.events_dir / f"{method}-events.jsonl"
                )
            result["runs"].append(row)  # type: ignore[attr-defined]
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2))
            print(" ".join(f"{k}={v}" for k, v in row.items() if k != "stderr_tail"), flush=True)
            if row["stderr_tail"]:
                print(row["stderr_tail"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
