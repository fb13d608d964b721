"""The training layer's CUDA paths on a GPU: QLoRA, LoRA and full SFT through the real CLI, and the
peak CUDA memory of QLoRA against workers.training.estimate.

(a) SFT of the built-in tiny model (partly trained variant) on the reverse demo task through
    `python -m workers.training run SPEC.json`, with method qlora, lora and full: success, process wall
    time, the trainer's runtime, the final loss, held-out exact match before and after (the runner's
    own `finished` metrics), and the process's peak CUDA memory (torch.cuda.max_memory_allocated,
    read at exit by a thin wrapper that starts the CLI's __main__ unchanged).
(b) QLoRA rows for the memory comparison of bench/gpu_memory.py: a randomly initialised Llama of
    Qwen2.5-0.5B's and TinyLlama-1.1B's shapes is saved in bf16, loaded 4-bit through
    workers.training.models.load_model(method="qlora") (the runner's path: BitsAndBytesConfig nf4,
    double quantization, bf16 compute), given LoRA adapters of rank 16 on every linear layer (in bf16,
    as TRL's SFTTrainer casts them for quantized models) and trained a few steps on random tokens under
    bf16 autocast; the peak of torch.cuda.max_memory_allocated is compared with
    estimate(..., method="qlora"). LoRA rows (bench/gpu_memory.measure) are measured in the same run
    as the baseline unless --no-baseline.

Needs a CUDA GPU with torch, transformers, peft, trl, datasets and bitsandbytes; not part of the test
suite. Prints a table and writes bench/results/gpu_training.json (or --out), after every row.

    python bench/gpu_training.py [--steps 200] [--shape qwen0.5b] [--no-baseline] [--out FILE]
    python bench/gpu_training.py --cpu-dry-run     (plumbing check of (a) on a CPU: few steps, no (b))
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from workers.training.folder import JobFolder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from workers.training import tiny  # noqa: E402
from workers.training.estimate import GB, Shape, estimate  # noqa: E402
from workers.training.events import read_events  # noqa: E402

METHODS = ("qlora", "lora", "full")
REVERSE = tiny.DEMO / "reverse"

# Runs the CLI's __main__ as `python -m workers.training` does, and writes the process's CUDA peaks to
# $ATELIER_PEAK_FILE when it exits (atexit runs after the CLI's sys.exit).
WRAPPER = r"""
import atexit, json, os, runpy, sys

def _peak():
    try:
        import torch
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            peaks = {"max_allocated": torch.cuda.max_memory_allocated(), "max_reserved": torch.cuda.max_memory_reserved()}
        else:
            peaks = {"max_allocated": None, "max_reserved": None, "note": "CUDA was not used"}
    except Exception as exc:
        peaks = {"error": repr(exc)}
    with open(os.environ["ATELIER_PEAK_FILE"], "w") as f:
        json.dump(peaks, f)

atexit.register(_peak)
sys.argv = ["python -m workers.training", *sys.argv[1:]]
runpy.run_module("workers.training", run_name="__main__", alter_sys=True)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(ROOT)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # Nothing is fetched: no hub, no tracking server.
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def sft_spec(method: str, model_dir: Path, work: Path, steps: int, batch: int) -> dict[str, Any]:
    return {
        "technique": "sft",
        "model": str(model_dir / "partial"),
        "dataset": str(REVERSE / "sft.jsonl"),
        "eval_dataset": str(REVERSE / "eval.jsonl"),
        "output_dir": str(work / method / "out"),
        "job_id": f"gpu-{method}",
        # Learning rate, rank, length: the automatic choices (hparams.resolve), as a user would get them.
        "training": {"method": method, "max_steps": steps, "batch_size": batch, "save_steps": 10_000},
        "tracking": {"enabled": False},  # no MLflow server on the GPU machine
    }


def run_sft(method: str, model_dir: Path, work: Path, steps: int, batch: int, gpu: bool) -> dict[str, Any]:
    """One SFT run through the CLI in its own process; what it reported."""
    folder = work / method
    folder.mkdir(parents=True, exist_ok=True)
    spec = sft_spec(method, model_dir, work, steps, batch)
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    peak_file = folder / "peak.json"
    env = _env() | {"ATELIER_PEAK_FILE": str(peak_file)}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, "run", str(spec_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    (folder / "stderr.txt").write_text(proc.stderr)
    events = read_events(JobFolder(Path(spec["output_dir"])).events)
    last = events[-1] if events else {}
    configured = next((e for e in events if e["event"] == "configured"), {})
    steps_logged = [e for e in events if e["event"] == "step"]
    runtime = next(
        (e["metrics"]["train_runtime"] for e in reversed(steps_logged) if "train_runtime" in e["metrics"]),
        None,
    )
    losses = [e["metrics"]["loss"] for e in steps_logged if "loss" in e["metrics"]]
    peaks = json.loads(peak_file.read_text()) if peak_file.exists() else {}
    row: dict[str, Any] = {
        "method": method,
        "ok": proc.returncode == 0 and last.get("event") == "finished",
        "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "train_runtime_s": round(runtime, 2) if runtime else None,
        "steps_per_s": round(steps / runtime, 2) if runtime else None,
        "first_loss": round(losses[0], 4) if losses else None,
        "last_loss": round(losses[-1], 4) if losses else None,
        "peak_allocated_gb": _gb(peaks.get("max_allocated")),
        "peak_reserved_gb": _gb(peaks.get("max_reserved")),
        "hparams": configured.get("hparams"),
        "parameters": configured.get("parameters"),
    }
    if row["ok"]:
        metrics = last.get("metrics", {})
        row |= {
            "global_step": metrics.get("global_step"),
            "train_loss": metrics.get("train_loss"),
            "heldout_before": metrics.get("heldout_before"),
            "heldout_after": metrics.get("heldout_after"),
            "artifacts": last.get("artifacts"),
        }
    else:
        row["error"] = last.get("message") or f"no events; exit {proc.returncode}"
        if last.get("traceback"):
            row["traceback"] = last["traceback"][-4000:]
        row["stderr_tail"] = proc.stderr[-3000:]
    row["estimate"] = _sft_estimate(spec, gpu)
    return row


def _sft_estimate(spec: dict[str, Any], gpu: bool) -> dict[str, Any] | str:
    """The app's own estimate of the spec (what the wizard shows before launch)."""
    try:
        from workers.training.spec import JobSpec
        from workers.training.train import estimate_spec

        guess = estimate_spec(JobSpec.from_dict(spec), gpu=gpu)["estimate"]
        return {"total_gb": guess["total_gb"], "seconds": guess["seconds"]}
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        return f"estimate failed: {exc!r}"


def _gb(value: Any) -> float | None:
    return round(value / GB, 4) if isinstance(value, int | float) else None


def measure_qlora(shape_name: str, batch: int, length: int, steps: int = 3) -> dict[str, Any]:
    """Peak CUDA memory of QLoRA steps on a random model of a real shape, loaded by the runner's path."""
    import torch
    from gpu_memory import SHAPES
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from workers.training.models import load_model
    from workers.training.spec import ModelRef

    config = LlamaConfig(**SHAPES[shape_name], max_position_embeddings=max(2048, length))
    shape = Shape.from_config(config)
    guess = estimate(
        shape, technique="sft", method="qlora", batch_size=batch, max_length=length, steps=1, lora_rank=16
    )
    row: dict[str, Any] = {"shape": shape_name, "method": "qlora", "batch": batch, "length": length,
                           "shape_parameters": shape.parameters, "estimated_gb": guess.total_gb,
                           "estimated_weights_gb": guess.weights_gb, "estimated_class": guess.compute_class}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=f"qlora-{shape_name}-") as folder:
        # A bf16 checkpoint, as real ones are; built on the GPU, which is far faster than on the CPU.
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = LlamaForCausalLM(config)
        model.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
        row["parameters"] = sum(p.numel() for p in model.parameters())
        del model
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        started = time.perf_counter()
        model = load_model(ModelRef(folder), method="qlora")
        row["load_seconds"] = round(time.perf_counter() - started, 2)
        row["weights_gb"] = round((torch.cuda.memory_allocated() - before) / GB, 3)
        row["loaded_in_4bit"] = bool(getattr(model, "is_loaded_in_4bit", False))
        row["linear4bit_modules"] = sum(type(m).__name__ == "Linear4bit" for m in model.modules())
        row["device"] = str(next(model.parameters()).device)
        model = get_peft_model(
            model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
        )
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.to(torch.bfloat16)  # as TRL's SFTTrainer does for a quantized base
        trainable = [p for p in model.parameters() if p.requires_grad]
        row["trainable_parameters"] = sum(p.numel() for p in trainable)
        optimizer = torch.optim.AdamW(trainable, lr=1e-5)
        ids = torch.randint(0, config.vocab_size, (batch, length), device="cuda")
        model.train()
        losses = []
        step_started = time.perf_counter()
        for _ in range(steps):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        torch.cuda.synchronize()
        row["step_seconds"] = round((time.perf_counter() - step_started) / steps, 3)
        peak = (torch.cuda.max_memory_allocated() - before) / GB
        row["losses"] = [round(x, 4) for x in losses]
        row["measured_gb"] = round(peak, 2)
        row["ratio"] = round(guess.total_gb / peak, 2)
        del model, optimizer, loss, ids
        gc.collect()
        torch.cuda.empty_cache()
    return row


def _safe(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        return {"ok": True, **fn(*args, **kwargs)}
    except Exception as exc:  # noqa: BLE001 - one failed row must not lose the others
        traceback.print_exc()
        return {"ok": False, "error": repr(exc), "traceback": traceback.format_exc()[-4000:]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200, help="SFT steps per method")
    parser.add_argument("--batch", type=int, default=32, help="SFT batch size")
    parser.add_argument("--method", action="append", choices=METHODS, help="SFT methods (default: all)")
    parser.add_argument("--shape", action="append", help="memory shapes (default: qwen0.5b and tinyllama)")
    parser.add_argument("--mem-batch", type=int, default=4)
    parser.add_argument("--mem-length", type=int, default=512)
    parser.add_argument("--no-baseline", action="store_true", help="skip the LoRA rows of the memory table")
    parser.add_argument("--no-memory", action="store_true", help="skip (b)")
    parser.add_argument("--model-dir", default=str(ROOT / "var" / "models" / "atelier-tiny"))
    parser.add_argument("--work", help="folder for the runs' outputs (default: a temporary one)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_training.json"))
    parser.add_argument(
        "--cpu-dry-run", action="store_true", help="check the plumbing of (a) without a GPU: 5 steps, no (b)"
    )
    args = parser.parse_args()

    import torch

    gpu = torch.cuda.is_available()
    if not gpu and not args.cpu_dry_run:
        print(
            "bench/gpu_training.py needs a CUDA GPU (QLoRA's 4-bit weights and CUDA peaks); none is visible "
            f"to torch {torch.__version__}. Use --cpu-dry-run to check the plumbing on a CPU.",
            file=sys.stderr,
        )
        return 2
    steps = args.steps if gpu else min(args.steps, 5)
    model_dir = Path(args.model_dir)
    if not tiny.is_built(model_dir):
        print(f"Building the tiny model into {model_dir} ...", flush=True)
        tiny.build(model_dir)

    result: dict[str, Any] = {"device": torch.cuda.get_device_name() if gpu else "CPU (dry run)",
                              "torch": torch.__version__, "versions": _versions(), "sft_steps": steps,
                              "sft_batch": args.batch, "sft": [], "memory": []}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        out.write_text(json.dumps(result, indent=2))

    print(f"device: {result['device']}  versions: {result['versions']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-training-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        for method in args.method or METHODS:
            print(f"SFT {method}: {steps} steps ...", flush=True)
            row = run_sft(method, model_dir, work, steps, args.batch, gpu)
            result["sft"].append(row)
            save()
            print(json.dumps({k: v for k, v in row.items() if k not in ("hparams", "stderr_tail", "traceback")}),
                  flush=True)  # fmt: skip
            if not row["ok"]:
                print(
                    f"  FAILED: {row['error']}\n{row.get('traceback', '')}\n{row['stderr_tail']}", flush=True
                )

    if gpu and not args.no_memory:
        shapes = args.shape or ["qwen0.5b", "tinyllama"]
        for shape in shapes:
            print(f"memory: {shape} qlora ...", flush=True)
            row = _safe(measure_qlora, shape, args.mem_batch, args.mem_length)
            row.setdefault("shape", shape)
            row.setdefault("method", "qlora")
            result["memory"].append(row)
            save()
            print(json.dumps({k: v for k, v in row.items() if k != "traceback"}), flush=True)
        if not args.no_baseline:
            from gpu_memory import measure

            for shape in shapes:
                print(f"memory: {shape} lora (baseline) ...", flush=True)
                row = _safe(measure, shape, "lora", args.mem_batch, args.mem_length)
                row.setdefault("shape", shape)
                row.setdefault("method", "lora")
                result["memory"].append(row)
                save()
                print(json.dumps({k: v for k, v in row.items() if k != "traceback"}), flush=True)

    print_tables(result)
    save()
    return 0 if all(r["ok"] for r in result["sft"] + result["memory"]) else 1


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in ("transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def print_tables(result: dict[str, Any]) -> None:
    print(
        f"\nGPU: {result['device']}  torch {result['torch']}  SFT: {result['sft_steps']} steps, batch {result['sft_batch']}"
    )
    print(f"{'method':<6} {'ok':<3} {'wall s':>7} {'train s':>8} {'steps/s':>8} {'loss first→last':>17} "
          f"{'EM before':>9} {'EM after':>8} {'peak GB':>8} {'est GB':>7}")  # fmt: skip
    for r in result["sft"]:
        loss = f"{r['first_loss']}→{r['last_loss']}" if r["first_loss"] is not None else "-"
        est = r["estimate"]["total_gb"] if isinstance(r["estimate"], dict) else "-"
        print(f"{r['method']:<6} {'yes' if r['ok'] else 'NO':<3} {r['wall_s']:>7} {r['train_runtime_s'] or '-':>8} "
              f"{r['steps_per_s'] or '-':>8} {loss:>17} {_fmt(r.get('exact_match_before')):>9} "
              f"{_fmt(r.get('exact_match_after')):>8} {r['peak_allocated_gb'] or '-':>8} {est:>7}")  # fmt: skip
        if not r["ok"]:
            print(f"       error: {r['error']}")
    if result["memory"]:
        print(f"\n{'shape':<10} {'method':<6} {'ok':<3} {'weights GB':>10} {'measured GB':>12} {'estimate GB':>12} "
              f"{'est/meas':>9} {'step s':>7}")  # fmt: skip
        for r in result["memory"]:
            print(f"{r['shape']:<10} {r['method']:<6} {'yes' if r['ok'] else 'NO':<3} {r.get('weights_gb', '-'):>10} "
                  f"{r.get('measured_gb', '-'):>12} {r.get('estimated_gb', '-'):>12} {r.get('ratio', '-'):>9} "
                  f"{r.get('step_seconds', '-'):>7}")  # fmt: skip
            if not r["ok"]:
                print(f"       error: {r['error']}")


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


if __name__ == "__main__":
    sys.exit(main())
