"""Checkpointless, elastic training on torchft: one job runs as several data-parallel replicas.

    coordinator (one a job)            replica 0 … replica N-1 (one a worker)
      torchft Lighthouse  ◄── quorum ──  torchft Manager + gloo process group
      MLflow run, goodput                 the compact training loop (replica.py)

Each step every replica asks the lighthouse for a quorum, computes its shard's gradients, and the
replicas average them with a fault-tolerant allreduce; a step is committed only when every participant
got through it. A replica that dies costs the survivors that one step; its replacement starts at step 0
(or from the newest disk checkpoint), joins the next quorum and receives the model, optimizer and data
cursor from a healthy peer over HTTP, with no restart of the job and nothing read from disk. Replicas
join and leave between steps (elastic): the data cursor is part of the shared state and each step's
global batch is split among the replicas in that step's quorum, so no example is lost or seen twice
within an epoch beyond the batch of a step that failed (whose gradients were thrown away).

This module is light (no torch): the configuration, the event names and goodput, which the web app reads.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

MAX_REPLICAS = 16


class ResilienceError(ValueError):
    """A resilience setting that cannot be run, with a message a person understands."""


@dataclass(frozen=True)
class Resilience:
    """The resilient mode of a job (the spec's `resilience`; empty means a plain run)."""

    min_replicas: int = 1
    max_replicas: int = 3
    # How fast the lighthouse drops a replica that stopped heartbeating, and how long a quorum waits for
    # replicas that heartbeat but have not asked to join yet: each is time the survivors lose a failure.
    heartbeat_timeout_ms: int = 500
    join_timeout_ms: int = 500
    # A collective or a checkpoint transfer that takes longer than this fails the step.
    timeout_seconds: float = 20.0

    @classmethod
    def from_spec(cls, data: dict[str, Any], *, technique: str, method: str) -> Resilience:
        try:
            config = cls(**data)
        except TypeError as exc:
            raise ResilienceError(f"The resilience settings are malformed: {exc}.") from exc
        from workers.training.techniques import REGISTRY

        # Each technique declares the methods its resilient loop runs (techniques.base.Technique).
        supported = {name: t for name, t in REGISTRY.items() if t.resilient}
        if technique not in supported:
            raise ResilienceError(
                f"Resilient training is available for {', '.join(t.short for t in supported.values())}, "
                f"not {technique.upper()}."
            )
        if method not in supported[technique].resilient:
            raise ResilienceError(
                f"Resilient {supported[technique].short} trains with {' or '.join(supported[technique].resilient)}, not {method}."
            )
        if not 1 <= config.min_replicas <= config.max_replicas <= MAX_REPLICAS:
            raise ResilienceError(
                f"Replicas must satisfy 1 ≤ minimum ≤ maximum ≤ {MAX_REPLICAS} "
                f"(got minimum {config.min_replicas}, maximum {config.max_replicas})."
            )
        return config

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def committed_steps(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record a committed step, in step order: the leader's `step` event, or where the leader died
    before writing it, another participant's `commit` event."""
    by_step: dict[int, dict[str, Any]] = {}
    for e in events:
        leader = e.get("event") == "step"
        if e.get("participants") and (leader or (e.get("event") == "commit" and e["step"] not in by_step)):
            by_step[e["step"]] = e
    return [by_step[k] for k in sorted(by_step)]


def goodput(events: list[dict[str, Any]], slots: int) -> dict[str, Any] | None:
    """Goodput = committed useful replica-steps × normal step time / (replica slots × wall time).

    Useful replica-steps are the participants of every committed step (a healing or dead replica adds
    none); the normal step time is the median duration of committed steps at full strength (every slot
    participating), or of all committed steps when none was; the wall time runs from the start of the
    first committed step to the last commit. None before two steps were committed."""
    steps = committed_steps(events)
    if len(steps) < 2:
        return None
    full = [e["step_seconds"] for e in steps if e["participants"] >= slots and e.get("step_seconds")]
    durations = full or [e["step_seconds"] for e in steps if e.get("step_seconds")]
    if not durations:
        return None
    normal = statistics.median(durations)
    useful = sum(int(e["participants"]) for e in steps)
    wall = steps[-1]["time"] - (steps[0]["time"] - (steps[0].get("step_seconds") or 0.0))
    value = useful * normal / (slots * wall) if wall > 0 else 0.0
    # Recovery time: a replacement's start (its spawn, or a warm spare's activation) → its first commit.
    replacements = {
        e["replica"] for e in events if e.get("event") == "replica_spawned" and e.get("replacement")
    }
    recoveries = [
        e["recovery_seconds"]
        for e in events
        if e.get("event") == "replica_recovered" and e.get("replica") in replacements
    ]
    return {
        "goodput": round(min(1.0, value), 4),
        "useful_replica_steps": useful,
        "committed_steps": len(steps),
        "normal_step_seconds": round(normal, 4),
        "wall_seconds": round(wall, 3),
        "slots": slots,
        "failed_steps": len({e.get("step") for e in events if e.get("event") == "step_failed"}),
        "recoveries": len(recoveries),
        "recovery_seconds_median": round(statistics.median(recoveries), 3) if recoveries else None,
        "recovery_seconds_max": round(max(recoveries), 3) if recoveries else None,
    }
