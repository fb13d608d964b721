"""The coordinator of a resilient job, and a group of replica processes on one machine.

The coordinator holds the job's torchft Lighthouse (replicas find it through the `lighthouse` file in
the job's folder), starts the MLflow run the replicas log into, and, when the run ends, logs goodput and
recovery times. Workers run replicas as their own processes (the web app's replica tasks); `run_group`
does the same on one machine: it starts N replica processes, starts a replacement for any that dies,
and can inject faults (SIGKILL a replica every K steps) and change the replica count while the job runs
(elastic), which the tests and bench/resilience.py use.

    python -m workers.training coordinate SPEC.json
    python -m workers.training resilient SPEC.json [--replicas 3] [--kill-every 100] [--schedule 0:1,40:3,80:2]
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.processes import kill_group
from workers.training import tracking
from workers.training.events import EventWriter, read_new_events
from workers.training.resilient import Resilience, goodput
from workers.training.spec import JobSpec

ROOT = Path(__file__).resolve().parents[3]
POLL = 0.05
MAX_CRASHES = 5


class Coordinator:
    """The Lighthouse of one job and its MLflow run."""

    def __init__(self, spec: JobSpec, events: EventWriter, *, bind_host: str = "127.0.0.1") -> None:
        from torchft.coordination import LighthouseServer

        self.spec, self.events = spec, events
        self.config = Resilience.from_spec(
            spec.resilience, technique=spec.technique, method=spec.training.method
        )
        self.lighthouse = LighthouseServer(
            bind=f"{'[::]' if bind_host != '127.0.0.1' else '127.0.0.1'}:0",
            min_replicas=self.config.min_replicas,
            join_timeout_ms=self.config.join_timeout_ms,
            heartbeat_timeout_ms=self.config.heartbeat_timeout_ms,
        )
        port = self.lighthouse.address().rsplit(":", 1)[1]
        self.address = f"http://{bind_host}:{port}"
        spec.folder.lighthouse.write_text(self.address)
        events.emit("lighthouse", address=self.address, **self.config.as_dict())
        self.tracker = None
        if spec.tracking.enabled:
            self.tracker, problem = tracking.start(
                tracking_uri=spec.tracking.tracking_uri, experiment=spec.tracking.experiment,
                run_name=spec.tracking.run_name or f"{spec.technique}-{spec.job_id}", output=spec.output,
                params={"spec": json.loads(spec.to_json()), "mode": "resilient"},
            )  # fmt: skip
            if problem:
                events.warning(problem)

    def summary(self, events: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Goodput and recovery times of the run so far; logged to MLflow."""
        result = goodput(events, self.config.max_replicas)
        if result and self.tracker is not None:
            numbers = {k: v for k, v in result.items() if isinstance(v, int | float)}
            with contextlib.suppress(Exception):  # the run may have ended: the summary is still an event
                self.tracker.log_metrics(numbers, step=result["committed_steps"])
                import mlflow

                mlflow.flush_async_logging()
        return result

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.lighthouse.shutdown()
        self.spec.folder.lighthouse.unlink(missing_ok=True)


def replica_command(spec_path: Path, index: int, lighthouse: str) -> list[str]:
    return [sys.executable, "-m", "workers.training", "replica", str(spec_path), "--index", str(index),
            "--lighthouse", lighthouse]  # fmt: skip


def spawn_replica(
    spec_path: Path,
    index: int,
    lighthouse: str,
    log: Any = None,
    standby: bool = False,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """A replica process in its own session, its recovery clock started now (the worker's replicas pass
    a preexec_fn that ties the process to the worker's life)."""
    from workers.training.resilient.replica import SPAWNED_AT_ENV

    return subprocess.Popen(
        replica_command(spec_path, index, lighthouse) + (["--standby"] if standby else []), cwd=ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=log if log is not None else subprocess.DEVNULL,
        env={**os.environ, SPAWNED_AT_ENV: repr(time.time())}, start_new_session=True, preexec_fn=preexec_fn,
    )  # fmt: skip


@dataclass
class _Tail:
    path: Path
    offset: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0

    def read(self) -> list[dict[str, Any]]:
        new, self.offset = read_new_events(self.path, self.offset)
        for event in new:
            if event.get("event") == "step":
                self.step = max(self.step, int(event["step"]))
        self.events += new
        return new


def parse_schedule(text: str | None) -> list[tuple[int, int]]:
    """ "0:1,40:3,80:2" → [(0, 1), (40, 3), (80, 2)]: from step 40 on, three replicas."""
    if not text:
        return []
    pairs = []
    for part in text.split(","):
        at, _, count = part.partition(":")
        pairs.append((int(at), int(count)))
    return sorted(pairs)


def run_group(
    spec_path: Path,
    spec: JobSpec,
    events: EventWriter,
    *,
    replicas: int | None = None,
    kill_every: int | None = None,
    schedule: list[tuple[int, int]] | None = None,
    spares: int = 0,
    replenish: bool = True,
) -> dict[str, Any]:
    """Run a resilient job's replicas on this machine to the end; the `finished` event, with goodput.

    Slots are the places of the replicas the job should have (the schedule's count); each holds one
    replica process. A process that dies is replaced in its slot, by a warm spare when one is ready
    (loaded and waiting: it joins at once) or else by a new process. Without `replenish`, the spares
    are loaded before training and not replaced as they are used (spare machines kept for faults)."""
    coordinator = Coordinator(spec, events)
    events_path = spec.folder.events
    tail = _Tail(events_path, offset=events_path.stat().st_size)
    plan = list(schedule or [(0, replicas or coordinator.config.max_replicas)])
    target = plan.pop(0)[1]
    spec.folder.replicas.mkdir(exist_ok=True)
    log = spec.folder.replicas_log.open("ab")
    procs: dict[int, subprocess.Popen[bytes]] = {}  # replica index → its process
    slots: dict[int, int] = {}  # slot → replica index
    leaving: set[int] = set()
    pool: list[int] = []  # warm spares, not yet activated
    ended: set[int] = set()  # replicas that reported their end (done, left)
    ready: set[int] = set()  # spares loaded and waiting
    joined: set[int] = set()  # replicas that committed a step
    finished: dict[str, Any] | None = None
    crashes: list[int] = []  # the job's step at each unexpected replica failure
    next_kill, victim, max_steps = kill_every or 0, 0, 0

    def start(standby: bool = False) -> int:
        index = len(procs)
        procs[index] = spawn_replica(spec_path, index, coordinator.address, log, standby=standby)
        return index

    try:
        while True:
            for event in tail.read():
                kind = event.get("event")
                max_steps = int(event.get("max_steps") or max_steps)
                if kind == "finished":
                    finished = event
                elif kind in ("replica_done", "replica_left"):
                    ended.add(int(event["replica"]))
                elif kind == "replica_standby":
                    ready.add(int(event["replica"]))
                elif kind == "replica_recovered":
                    joined.add(int(event["replica"]))
                elif kind == "failed" and "traceback" not in event:
                    # A mistake a person must fix (data, spec, model): every replica would hit it.
                    raise _GroupFailed(event.get("message") or "A replica failed.")
                elif kind == "failed":
                    crashes.append(tail.step)  # unexpected: its process ends and is replaced
            if len(crashes) > MAX_CRASHES and crashes[-1] == crashes[-MAX_CRASHES - 1]:
                raise _GroupFailed(
                    f"Replicas failed {MAX_CRASHES + 1} times without a committed step in between; the last "
                    "error is in replicas.log."
                )
            if finished is not None:
                for index in pool:
                    procs[index].terminate()  # a spare stops at once when asked
                pool.clear()
                for index, loading in procs.items():  # replacements still loading have nothing to add
                    if index not in joined and loading.poll() is None and index not in ready:
                        loading.kill()
                if all(p.poll() is not None for p in procs.values()):
                    break
                time.sleep(POLL)
                continue
            # Elastic: the replica count follows the schedule, by the job's committed step.
            while plan and tail.step >= plan[0][0]:
                target = plan.pop(0)[1]
            for slot in sorted(slots):
                index = slots[slot]
                if slot >= target and index not in leaving:
                    leaving.add(index)
                    spec.folder.replica_flag(index, "leave").touch()
                    events.emit("replica_leaving", replica=index, slot=slot, step=tail.step)
                if index in leaving and procs[index].poll() is not None:
                    del slots[slot]
            for slot in range(target):
                index = slots.get(slot, -1)
                proc = procs.get(index)
                if proc is not None and (proc.poll() is None or index in ended):
                    continue
                if proc is not None:
                    code = proc.returncode
                    events.emit("replica_died", replica=index, slot=slot, step=tail.step, exit_code=code,
                                reason=f"signal {-code}" if code < 0 else f"exit status {code}")  # fmt: skip
                # A spare that is loaded first; one still loading is still ahead of a new process.
                alive = sorted((i for i in pool if procs[i].poll() is None), key=lambda i: i not in ready)
                if alive:
                    slots[slot] = alive[0]
                    pool.remove(alive[0])
                    spec.folder.replica_flag(alive[0], "go").write_text(repr(time.time()))
                else:
                    slots[slot] = start()
                events.emit("replica_spawned", replica=slots[slot], slot=slot, step=tail.step,
                            replacement=proc is not None, spare=bool(alive))  # fmt: skip
            pool[:] = [i for i in pool if procs[i].poll() is None]
            while len(pool) < spares and (replenish or len(procs) < target + spares):
                pool.append(start(standby=True))
                events.emit("spare_spawned", replica=pool[-1], step=tail.step)
            # Fault injection: SIGKILL one replica (slot by slot) every `kill_every` committed steps.
            if kill_every and tail.step >= next_kill > 0 and (not max_steps or tail.step < max_steps):
                next_kill += kill_every
                live = [
                    slots[s] for s in sorted(slots) if procs[slots[s]].poll() is None and slots[s] in joined
                ]
                if live:
                    index = live[victim % len(live)]
                    victim += 1
                    procs[index].send_signal(signal.SIGKILL)
                    events.emit("fault_injected", replica=index, step=tail.step, signal="SIGKILL")
            time.sleep(POLL)
    except BaseException:
        for proc in procs.values():
            kill_group(proc)
        raise
    finally:
        log.close()
        summary = coordinator.summary(tail.events)
        coordinator.close()
    events.emit("goodput", **(summary or {}))
    return {**finished, "goodput": summary}


class _GroupFailed(RuntimeError):
    pass


def coordinate(spec: JobSpec, events: EventWriter) -> dict[str, Any]:
    """The coordinator alone (replicas run elsewhere): until a replica reports the end, or a stop."""
    from workers.training.train import StopRequest, TrainingError

    coordinator = Coordinator(spec, events, bind_host=os.environ.get("ATELIER_LIGHTHOUSE_HOST", "127.0.0.1"))
    tail = _Tail(spec.folder.events, offset=spec.folder.events.stat().st_size)
    try:
        while not StopRequest.requested:
            new = tail.read()
            if any(e.get("event") == "finished" for e in new) or spec.folder.cancel.exists():
                break
            mistakes = [e for e in new if e.get("event") == "failed" and "traceback" not in e]
            if mistakes:  # a mistake a person must fix (data, spec, model): every replica would hit it
                raise TrainingError(mistakes[0].get("message") or "A replica failed.")
            time.sleep(0.2)
        summary = coordinator.summary(tail.events)
        return events.emit("goodput", **(summary or {}))
    finally:
        coordinator.close()


def group_and_report(spec_path: Path, **options: Any) -> int:
    from workers.training.train import TrainingError, report_events

    def work(spec: JobSpec, events: EventWriter) -> dict[str, Any]:
        try:
            return run_group(spec_path, spec, events, **options)
        except _GroupFailed as exc:
            raise TrainingError(str(exc)) from exc

    return report_events(spec_path, JobSpec.load, work)


def coordinate_and_report(spec_path: Path) -> int:
    from workers.training.train import report_events

    return report_events(spec_path, JobSpec.load, coordinate)
