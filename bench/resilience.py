"""Resilient (checkpointless) training under faults, against checkpoint-and-resume on the same work.

On the built-in tiny model (SFT, full fine-tuning, the demo reverse data), in this order:
1. baseline: `python -m workers.training resilient` with 3 torchft replicas and no faults: goodput, the
   normal (median) step time, the process wall time;
2. fault injection: the same job with one replica SIGKILLed every --kill-every committed steps
   (`--kill-every`): with one warm spare a fault, all loaded before training (`--spares 4
   --no-replenish`: the spare machines of a cluster), with one warm spare replaced as it is used
   (`--spares 1`: a loaded, idle process takes the lost replica's place, and a new spare loads on the
   same 2 cores while training goes on), and without (`--spares 0`: a new process is started). Goodput; recovery time
   (median and max, from the goodput event: a replacement's start, or a spare's activation, to its first
   committed step; cross-checked against the group's own `replica_spawned` event); failed steps
   (distinct steps a replica reported as not committed); whether the replicas that ended at the last step after committing
   steps hold identical parameters (their params_sha256); and that the job never restarted (one
   lighthouse, steps 1..N each committed once, in order). Time lost per failure, two ways: the process
   wall against the baseline's, (wall - baseline wall) / faults; and in seconds of full-strength training,
   ((1 - goodput) x train wall - the same of the baseline) / faults, since a step with fewer participants
   trains on fewer examples (the global batch is participants x batch) and, on shared cores, runs faster;
3. checkpoint-and-resume: the plain runner (`python -m workers.training run`, TRL's SFTTrainer) on the
   same model and data with a batch of 3 x the per-replica batch, uninterrupted, then SIGKILLed every
   --kill-every steps and started again at once (it resumes from the newest complete checkpoint, saved
   every --save-steps). Each kill lands --save-steps/2 steps after a multiple of --kill-every (at the
   first logged step at or past it), between two checkpoints: a failure at a random time loses half a
   checkpoint interval on average; a kill on a checkpoint's step waits for that checkpoint to be written.
   Time lost per failure = (interrupted wall - uninterrupted wall) / failures: process start-up, model and
   checkpoint loading, and the recomputed steps (also reported: kill to `resumed`, and steps recomputed).
   Nothing detects the failure here: the restart is immediate, the best case of a real scheduler.

Wall times are whole processes (start-up, imports, model loading and saving included). The resilient
replicas run one torch thread each (3 replicas, plus a spare, share the machine's cores); the plain run
uses torch's default threads, which slow down many times over when other processes compete for the
cores: nothing else should be running (the load average is recorded, and a warning printed).

    python bench/resilience.py                 (500 steps, a fault every 100: 9-10 minutes on 2 cores)
    python bench/resilience.py --quick         (60 steps, a fault every 20: about 2 minutes; a smoke check:
                                                a new replica process takes longer to start than the 20
                                                steps between faults, so --spares 0 may show no recovery)

The per-replica batch (--batch 32) makes a step of the 3 replicas about 0.2 s on 2 cores (batch 16 made
it 0.11 s); the plain run's batch is 3 x that, so both train on the same examples a step at full strength.

Prints a table and writes bench/results/resilience.json (bench/results/resilience-quick.json with
--quick). Never asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from workers.training.folder import JobFolder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workers.training import tiny  # noqa: E402
from workers.training.events import read_new_events  # noqa: E402
from workers.training.resilient import committed_steps  # noqa: E402

DATASET = tiny.DEMO / "reverse" / "sft.jsonl"
REPLICAS = 3
POLL = 0.02


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events file, skipping a line a SIGKILLed process may have left cut short."""
    events = []
    for line in path.read_text().splitlines() if path.exists() else []:
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


def _spec(
    work: Path, name: str, model: Path, args: argparse.Namespace, *, batch: int, resilient: bool
) -> Path:
    spec: dict[str, Any] = {
        "technique": "sft", "model": str(model), "dataset": str(DATASET), "output_dir": str(work / name),
        "tracking": {"enabled": False},
        "training": {"method": "full", "max_steps": args.steps, "batch_size": batch, "gradient_accumulation": 1,
                     "learning_rate": args.learning_rate, "save_steps": args.save_steps},
    }  # fmt: skip
    if resilient:
        # Training starts when two have joined (not one: no replica trains alone while the others load),
        # and two survivors of a fault keep committing (a minimum of three would stall them).
        spec["resilience"] = {"min_replicas": REPLICAS - 1, "max_replicas": REPLICAS}
    path = work / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process this bench started and every process below it (replicas run in their own
    sessions, so a signal to the group's process alone would leave them running)."""
    try:
        family = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    except psutil.Error:
        family = []
    for p in family:
        with contextlib.suppress(psutil.Error):
            p.kill()
    proc.wait()


def _run(command: list[str], log: Path, timeout: float) -> tuple[float, int]:
    """Run to the end; (wall seconds, exit status). Killed, with its children, past the timeout."""
    started = time.perf_counter()
    with log.open("ab") as err:
        proc = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            code = proc.wait(timeout)
        except BaseException:
            _stop(proc)
            raise
    return time.perf_counter() - started, code


def _failure(out: Path, what: str) -> RuntimeError:
    """What a failed run said: its last `failed` event, and the end of its stderr (and its replicas')."""
    events = read_events(JobFolder(out).events)
    failed = [e for e in events if e.get("event") == "failed"]
    message = failed[-1].get("message") if failed else "no failed event"
    logs = [out.with_suffix(".log"), JobFolder(out).replicas_log]
    tail = "".join(log.read_text(errors="replace")[-2000:] for log in logs if log.exists())
    return RuntimeError(f"{what}: {message}\n{tail}")


# Resilient --------------------------------------------------------------------------------------------


def elastic(work: Path, model: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One replica, three from 30% of the steps, two from 70% (two warm spares, so growth is prompt):
    the job never restarts, and for each replica count the step time, steps/s and examples/s."""
    path = _spec(work, "elastic", model, args, batch=args.batch, resilient=True)
    spec = json.loads(path.read_text())
    spec["resilience"]["min_replicas"] = 1
    path.write_text(json.dumps(spec))
    schedule = f"0:1,{args.steps * 3 // 10}:{REPLICAS},{args.steps * 7 // 10}:{REPLICAS - 1}"
    command = [sys.executable, "-m", "workers.training", "resilient", str(path), "--schedule", schedule,
               "--spares", "2"]  # fmt: skip
    print(f"  elastic: {' '.join(command[2:])}", flush=True)
    wall, code = _run(command, work / "elastic.log", args.timeout)
    if code != 0:
        raise _failure(work / "elastic", f"elastic exited with {code}")
    events = read_events(JobFolder(work / "elastic").events)
    steps = committed_steps(events)
    phases: list[int] = []
    for e in steps:
        if not phases or phases[-1] != e["participants"]:
            phases.append(int(e["participants"]))
    by_count: dict[int, dict[str, Any]] = {}
    for count in sorted({int(e["participants"]) for e in steps}):
        times = [
            float(e["step_seconds"]) for e in steps if e["participants"] == count and e.get("step_seconds")
        ]
        median = statistics.median(times)
        by_count[count] = {"steps": len(times), "step_s": round(median, 4), "steps_per_s": round(1 / median, 2),
                           "examples_per_s": round(count * args.batch / median, 1)}  # fmt: skip
    return {
        "schedule": schedule, "wall_s": round(wall, 2), "participants_in_order": phases,
        "never_restarted": sum(1 for e in events if e["event"] == "lighthouse") == 1
        and [e["step"] for e in steps] == list(range(1, args.steps + 1)),
        "left": sum(1 for e in events if e["event"] == "replica_left"),
        "by_replica_count": by_count,
    }  # fmt: skip


def resilient(work: Path, name: str, model: Path, args: argparse.Namespace, *, kill_every: int | None,
              spares: int, replenish: bool = True) -> dict[str, Any]:  # fmt: skip
    spec = _spec(work, name, model, args, batch=args.batch, resilient=True)
    out = work / name
    command = [sys.executable, "-m", "workers.training", "resilient", str(spec), "--replicas", str(REPLICAS),
               "--spares", str(spares)] + (["--kill-every", str(kill_every)] if kill_every else [])  # fmt: skip
    if not replenish:
        command.append("--no-replenish")
    print(f"  {name}: {' '.join(command[2:])}", flush=True)
    wall, code = _run(command, work / f"{name}.log", args.timeout)
    if code != 0:
        raise _failure(out, f"{name} exited with {code}")
    events = read_events(JobFolder(out).events)
    found: dict[str, Any] = next((e for e in reversed(events) if e["event"] == "goodput"), {})
    summary = {k: v for k, v in found.items() if k not in ("event", "time")}
    finished = [e for e in events if e["event"] == "finished"]
    steps = [int(e["step"]) for e in committed_steps(events)]  # the leader's, or where it died, a peer's
    last = args.steps
    # Replicas that committed at least one step (a replacement that started after the end only loads the
    # final disk checkpoint), and of those the ones that ended at the last step: the leader's `finished`,
    # the others' `replica_done`.
    committed = {e["replica"] for e in events if e["event"] == "replica_recovered"}
    ends = [e.get("params_sha256") for e in events if e.get("replica") in committed and (
            (e["event"] == "finished" and (e.get("metrics") or {}).get("global_step") == last)
            or (e["event"] == "replica_done" and e.get("step") == last))]  # fmt: skip
    # Recovery measured by the group's clock: its `replica_spawned` (replacement) → the replica's first
    # commit. It should agree with the goodput event's, which the replica measures itself.
    asked = {
        e["replica"]: e["time"] for e in events if e["event"] == "replica_spawned" and e.get("replacement")
    }
    recovered = [e["time"] - asked[e["replica"]] for e in events
                 if e["event"] == "replica_recovered" and e["replica"] in asked]  # fmt: skip
    durations = [float(e["step_seconds"]) for e in events if e["event"] == "step" and e.get("step_seconds")]
    losses = [
        e["metrics"]["loss"] for e in events if e["event"] == "step" and "loss" in (e.get("metrics") or {})
    ]
    lighthouses = sum(1 for e in events if e["event"] == "lighthouse")
    in_order = steps == list(range(1, last + 1))
    return {
        "name": name, "kill_every": kill_every, "spares": spares, "wall_s": round(wall, 2),
        "goodput": summary.get("goodput"), "normal_step_s": summary.get("normal_step_seconds"),
        "train_wall_s": summary.get("wall_seconds"), "slowest_step_s": round(max(durations), 3) if durations else None,
        "examples": (summary.get("useful_replica_steps") or 0) * args.batch,
        "faults": sum(1 for e in events if e["event"] == "fault_injected"),
        "deaths": sum(1 for e in events if e["event"] == "replica_died"),
        "replacements": len(asked), "replacements_from_spares": sum(
            1 for e in events if e["event"] == "replica_spawned" and e.get("replacement") and e.get("spare")),
        "recoveries": summary.get("recoveries"),
        "recovery_s_median": summary.get("recovery_seconds_median"), "recovery_s_max": summary.get("recovery_seconds_max"),
        "recovery_from_request_s_median": round(statistics.median(recovered), 3) if recovered else None,
        "recovery_from_request_s_max": round(max(recovered), 3) if recovered else None,
        "failed_steps": summary.get("failed_steps"),
        "distinct_failed_steps": len({e["step"] for e in events if e["event"] == "step_failed"}),
        "healed": sum(1 for e in events if e["event"] == "replica_healed"),
        "replicas_at_last_step": len(ends),
        "identical_params": len(ends) >= 1 and len(set(ends)) == 1 and None not in ends,
        "lighthouses": lighthouses, "finished_events": len(finished), "steps_once_in_order": in_order,
        "never_restarted": lighthouses == 1 and len(finished) == 1 and in_order,
        "last_loss": round(float(losses[-1]), 4) if losses else None,
        "goodput_summary": summary,
    }  # fmt: skip


# Plain, checkpoint and resume --------------------------------------------------------------------------


class _Tail:
    """New events of one process, from where its file ended when it started."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, path.stat().st_size if path.exists() else 0

    def read(self) -> list[dict[str, Any]]:
        new, self.offset = read_new_events(self.path, self.offset)
        return new


def plain(
    work: Path, name: str, model: Path, args: argparse.Namespace, *, kill_every: int | None
) -> dict[str, Any]:
    """The plain runner, SIGKILLed at each kill step and started again at once, until it finishes."""
    spec = _spec(work, name, model, args, batch=REPLICAS * args.batch, resilient=False)
    out = work / name
    command = [sys.executable, "-m", "workers.training", "run", str(spec)]
    offset = args.save_steps // 2
    targets = [k + offset for k in range(kill_every, args.steps, kill_every)] if kill_every else []
    targets = [t for t in targets if t < args.steps]
    print(
        f"  {name}: {' '.join(command[2:])}" + (f" (SIGKILL at steps >= {targets})" if targets else ""),
        flush=True,
    )
    kills: list[dict[str, Any]] = []
    processes = 0
    deadline = time.monotonic() + args.timeout
    started = time.perf_counter()
    with (work / f"{name}.log").open("ab") as err:
        while True:
            tail = _Tail(JobFolder(out).events)
            proc = subprocess.Popen(
                command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            )
            processes += 1
            step, saved, killed = 0, set(), None
            try:
                while proc.poll() is None:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{name} ran past {args.timeout} s")
                    for event in tail.read():
                        if event["event"] == "step":
                            step = max(step, int(event["step"]))
                        elif event["event"] == "checkpoint":
                            saved.add(int(event["step"]))
                        elif event["event"] == "resumed" and kills:
                            kills[-1]["resumed_from"] = int(event["step"])
                            kills[-1]["restart_s"] = round(time.perf_counter() - kills[-1]["at"], 3)
                    # A step that is also a checkpoint's: kill once it is written, so where it resumes
                    # does not depend on a race with the save.
                    if targets and step >= targets[0] and (step % args.save_steps or step in saved):
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                        killed = step
                        break
                    time.sleep(POLL)
            except BaseException:
                _stop(proc)
                raise
            if killed is None:
                for event in tail.read():  # what it wrote after the last poll
                    if event["event"] == "resumed" and kills and "resumed_from" not in kills[-1]:
                        kills[-1]["resumed_from"] = int(event["step"])
                if proc.returncode != 0:
                    raise _failure(out, f"{name} exited with {proc.returncode}")
                break
            targets.pop(0)
            kills.append({"killed_at_step": killed, "newest_checkpoint": max(saved, default=0),
                          "at": time.perf_counter()})  # fmt: skip
    wall = time.perf_counter() - started
    for kill in kills:
        kill.pop("at")
        if "resumed_from" in kill:
            kill["recomputed_steps"] = kill["killed_at_step"] - kill["resumed_from"]
    events = read_events(JobFolder(out).events)
    finished = [e for e in events if e["event"] == "finished"]
    runtimes = [e["metrics"]["train_runtime"] for e in events
                if e["event"] == "step" and "train_runtime" in (e.get("metrics") or {})]  # fmt: skip
    losses = [
        e["metrics"]["loss"] for e in events if e["event"] == "step" and "loss" in (e.get("metrics") or {})
    ]
    restarts = [k["restart_s"] for k in kills if "restart_s" in k]
    recomputed = [k["recomputed_steps"] for k in kills if "recomputed_steps" in k]
    return {
        "name": name, "kill_every": kill_every, "batch_size": REPLICAS * args.batch, "save_steps": args.save_steps,
        "wall_s": round(wall, 2), "processes": processes, "faults": len(kills), "kills": kills,
        "step_s": round(runtimes[-1] / args.steps, 4) if runtimes and not kills else None,
        "restart_s_median": round(statistics.median(restarts), 3) if restarts else None,
        "restart_s_max": round(max(restarts), 3) if restarts else None,
        "recomputed_steps_total": sum(recomputed), "examples": args.steps * REPLICAS * args.batch,
        "finished": len(finished) == 1 and (finished[0].get("metrics") or {}).get("global_step") == args.steps,
        "last_loss": round(float(losses[-1]), 4) if losses else None,
    }  # fmt: skip


# Report -----------------------------------------------------------------------------------------------


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in ("torch", "torchft", "transformers", "trl"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


COLUMNS = [("run", 22), ("wall s", 7), ("Δwall/fault", 11), ("lost/fault", 10), ("goodput", 7),
           ("step s", 6), ("faults", 6), ("recov med", 9), ("recov max", 9), ("failed", 6), ("same params", 11),
           ("no restart", 10)]  # fmt: skip


def _line(cells: list[Any]) -> str:
    return " ".join(
        f"{_cell(v):>{w}}" if i else f"{_cell(v):<{w}}"
        for i, (v, (_, w)) in enumerate(zip(cells, COLUMNS, strict=True))
    )


def print_table(result: dict[str, Any]) -> None:
    print("\n" + _line([c for c, _ in COLUMNS]))
    for r in result["resilient"]:
        print(_line([r["label"], r["wall_s"], r.get("wall_per_fault_s"), r.get("lost_per_fault_s"), r["goodput"],
                     r["normal_step_s"], r["faults"], r["recovery_s_median"], r["recovery_s_max"], r["failed_steps"],
                     r["identical_params"], r["never_restarted"]]))  # fmt: skip
    for r in result["plain"]:
        print(_line([r["label"], r["wall_s"], r.get("wall_per_fault_s"), r.get("lost_per_fault_s"), None,
                     r["step_s"], r["faults"], r["restart_s_median"], r["restart_s_max"], None, None, None]))  # fmt: skip
    killed = result["plain"][-1]
    print(f"resilient: lost/fault in seconds of full-strength training (goodput); recov = replacement start to its "
          f"first commit.\nplain: lost/fault = Δwall/fault; recov = SIGKILL to the restarted process's `resumed` "
          f"event; {killed['recomputed_steps_total']} steps recomputed in all.")  # fmt: skip
    for r in result["resilient"][1:]:
        if (
            r["recovery_from_request_s_max"] is not None
            and r["recovery_s_max"] is not None
            and (abs(r["recovery_from_request_s_max"] - r["recovery_s_max"]) > 0.5)
        ):
            print(f"note: {r['label']}: recovery by the group's clock (its replica_spawned to the first commit) "
                  f"median {r['recovery_from_request_s_median']} s, max {r['recovery_from_request_s_max']} s")  # fmt: skip
        if r["faults"] and r["recoveries"] != r["replacements"]:
            print(f"note: {r['label']}: {r['replacements']} replacements, {r['recoveries']} committed a step")
    grown = result["elastic"]
    print(f"\nelastic ({grown['schedule']}, never restarted: {grown['never_restarted']}): replicas "
          f"{' → '.join(map(str, grown['participants_in_order']))}")  # fmt: skip
    for count, row in grown["by_replica_count"].items():
        print(f"  {count} replica(s): {row['steps']} steps of {row['step_s']} s: {row['steps_per_s']} steps/s, "
              f"{row['examples_per_s']} examples/s")  # fmt: skip
    print()
    for key, text in result["ratios"].items():
        print(f"{key}: {text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="60 steps, a fault every 20, checkpoints every 10"
    )
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--kill-every", type=int, default=100)
    parser.add_argument(
        "--save-steps", type=int, default=50, help="checkpoints of the plain runs (and the replicas')"
    )
    parser.add_argument("--batch", type=int, default=32, help="per replica; the plain run takes 3x")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--timeout", type=float, default=900, help="seconds a run may take")
    parser.add_argument("--model", default=None, help="default: the built-in tiny model's base")
    parser.add_argument("--keep", action="store_true", help="keep the runs' folders (events, logs)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.kill_every, args.save_steps = 60, 20, 10
    out_path = Path(
        args.out
        or ROOT / "bench" / "results" / ("resilience-quick.json" if args.quick else "resilience.json")
    )
    if args.model:
        model = Path(args.model)
    else:
        root = Path(os.environ.get("ATELIER_DATA_DIR", ROOT / "var")) / "models" / "atelier-tiny"
        tiny.build(root)
        model = root / "base"

    import torch

    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"warning: load average {load_before[0]:.2f} before starting: other processes share the cores, "
              "and the timings will show it", flush=True)  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="atelier-resilience-"))
    print(f"{args.steps} steps, batch {args.batch} a replica ({REPLICAS * args.batch} plain), a fault every "
          f"{args.kill_every} steps; runs in {work}", flush=True)  # fmt: skip
    try:
        pool = max(1, args.steps // args.kill_every - 1)  # one spare a fault
        runs = [
            ("resilient, no faults", "baseline", None, 0, True),
            (f"resilient, {pool} spares ready", "spares-ready", args.kill_every, pool, False),
            ("resilient, spare 1", "spare1", args.kill_every, 1, True),
            ("resilient, spare 0", "spare0", args.kill_every, 0, True),
        ]
        rows = [{"label": label, **resilient(work, name, model, args, kill_every=kill, spares=spares,
                                             replenish=replenish)}
                for label, name, kill, spares, replenish in runs]  # fmt: skip
        grown = elastic(work, model, args)
        plains = [
            {"label": "plain, no faults", **plain(work, "plain", model, args, kill_every=None)},
            {"label": "plain, kill + resume",
             **plain(work, "plain-killed", model, args, kill_every=args.kill_every)},
        ]  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    base, plain_base, killed = rows[0], plains[0], plains[1]

    def lost(r: dict[str, Any]) -> float:  # seconds of full-strength training lost
        return (1 - (r["goodput"] or 0)) * (r["train_wall_s"] or 0)

    for r in rows[1:]:
        if r["faults"]:
            r["wall_per_fault_s"] = round((r["wall_s"] - base["wall_s"]) / r["faults"], 2)
            r["lost_per_fault_s"] = round((lost(r) - lost(base)) / r["faults"], 2)
        r["wall_ratio_to_baseline"] = round(r["wall_s"] / base["wall_s"], 3)
    if killed["faults"]:
        killed["wall_per_fault_s"] = killed["lost_per_fault_s"] = round(
            (killed["wall_s"] - plain_base["wall_s"]) / killed["faults"], 2
        )
    killed["wall_ratio_to_baseline"] = round(killed["wall_s"] / plain_base["wall_s"], 3)
    ratios: dict[str, str] = {}
    for r in rows[1:]:
        if r.get("lost_per_fault_s") and killed.get("lost_per_fault_s"):
            ratios[f"time lost per fault, plain / {r['label']}"] = (
                f"{killed['lost_per_fault_s']} / {r['lost_per_fault_s']} s = "
                f"{killed['lost_per_fault_s'] / r['lost_per_fault_s']:.2f}x"
            )
    for r in [*rows[1:], killed]:
        ratios[f"wall with faults / without, {r['label']}"] = f"{r['wall_ratio_to_baseline']}"
    ratios["wall, resilient without faults / plain uninterrupted"] = (
        f"{base['wall_s'] / plain_base['wall_s']:.3f}"
    )
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch_threads": torch.get_num_threads(), "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "versions": _versions(), "model": str(model), "dataset": str(DATASET),
        "steps": args.steps, "kill_every": args.kill_every, "batch_per_replica": args.batch, "replicas": REPLICAS,
        "save_steps": args.save_steps, "learning_rate": args.learning_rate, "quick": args.quick,
        "resilient": rows, "plain": plains, "elastic": grown, "ratios": ratios,
    }  # fmt: skip
    print_table(result)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nWrote {out_path}")
    checks = [r["identical_params"] and r["never_restarted"] for r in rows] + [p["finished"] for p in plains]
    checks.append(grown["never_restarted"])
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
