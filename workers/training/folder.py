"""A job's folder and the training process's exit codes: the contract between the worker that supervises
a job (workers.runner, Django-aware), the training process working in the folder (python -m
workers.training), and the pages that read what it left there. Every layer names a file of the folder
through JobFolder, never as a literal of its own.

Light on purpose (the standard library only): the web app, the worker and the training process all
import it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any


class Exit(IntEnum):
    """How a training process ends (`run`, `evaluate`, `synthesize`, `coordinate`, `replica`)."""

    OK = 0  # its last event says how the job ended: `finished` (perhaps cancelled)
    FAILED = 1  # a `failed` event says why, in words for people
    BAD_SPEC = 2  # the spec could not be read: a `failed` event on stdout only (no folder to write to)
    INTERRUPTED = 3  # stopped by SIGTERM at a safe point (an `interrupted` event): run again to resume


@dataclass(frozen=True)
class JobFolder:
    """The files of one job's folder (its spec's `output_dir`), by what they are."""

    path: Path

    # Written by the worker that runs the job.
    SPEC = "spec.json"  # the spec the training process reads, output_dir filled in (write_spec)
    CANCEL = "CANCEL"  # empty: the process stops at its next safe point (a step, a batch, a request)
    LOG = "train.log"  # the training process's stderr, whose tail the job page shows
    LOCK = "trainer.lock"  # held (flock) by the job's training process for as long as it lives
    TRAINER = "trainer.json"  # which process holds the lock: {"host", "pgid"}
    # Written by the training process, whatever the job's kind.
    EVENTS = "events.jsonl"  # JSON lines: progress, warnings and the outcome (workers.training.events)
    RUN_ID = "mlflow_run_id"  # the MLflow run, continued by a resumed attempt
    PENDING = "mlflow_pending.jsonl"  # step metrics waiting for a checkpoint that covers them
    # Training.
    CHECKPOINTS = "checkpoints"  # the trainer's checkpoint-<step> folders (the last two)
    ROWS_CACHE = "rows-arrow"  # the rows the trainer reads: an Arrow cache, memory-mapped, never a list
    BEST = "best"  # the best checkpoint by the held-out sample, with best.json (its step and score)
    HELDOUT = "heldout.json"  # the held-out checks so far: what a resumed run picks up
    ADAPTER = "adapter"  # the result of a LoRA run
    MODEL = "model"  # the result of full fine-tuning
    # Resilient training (workers.training.resilient).
    LIGHTHOUSE = "lighthouse"  # the coordinator's lighthouse address, while it is up
    REPLICAS = "replicas"  # a replica's flags: replicas/<index>.leave, replicas/<index>.go
    REPLICAS_LOG = "replicas.log"  # the replica processes' stderr
    RESILIENT = "resilient"  # disk checkpoints: resilient/step-<n>/state.pt and a COMPLETE marker
    # Evaluation.
    REPORT = "report.json"
    SAMPLES = "samples.jsonl"  # every row's answers and scores, for the sample browser
    GENERATIONS = "generations"  # the answers so far, a file a model: what a resumed evaluation keeps
    # Data generation.
    ROWS = "rows.jsonl"  # the generated dataset
    PROVENANCE = "provenance.jsonl"  # one line a row: topic, document chunk, teacher, request
    TOPICS = "topics.json"  # the topic tree, proposed or as a person edited it
    SUMMARY = "summary.json"
    MLFLOW = "mlflow"  # the files a generation logs to MLflow as artifacts

    def write_spec(self, spec: dict[str, Any]) -> Path:
        """Write the spec the training process reads, with this folder as its `output_dir` (whoever
        creates a job's folder fills that in: a spec is built and checked without one); its path."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.spec.write_text(json.dumps({**spec, "output_dir": str(self.path)}, indent=2))
        return self.spec

    def artifact(self, kind: str) -> Path:
        """A training result's folder: kind "adapter" (LoRA) or "model" (full fine-tuning)."""
        if kind not in (self.ADAPTER, self.MODEL):
            raise ValueError(f"A training result is an adapter or a model, not “{kind}”.")
        return self.path / kind

    def replica_flag(self, index: int, flag: str) -> Path:
        """replicas/<index>.<flag>: "leave" (leave at the next step) or "go" (a warm spare starts)."""
        return self.path / self.REPLICAS / f"{index}.{flag}"

    @property
    def spec(self) -> Path:
        return self.path / self.SPEC

    @property
    def cancel(self) -> Path:
        return self.path / self.CANCEL

    @property
    def log(self) -> Path:
        return self.path / self.LOG

    @property
    def lock(self) -> Path:
        return self.path / self.LOCK

    @property
    def trainer(self) -> Path:
        return self.path / self.TRAINER

    @property
    def events(self) -> Path:
        return self.path / self.EVENTS

    @property
    def run_id(self) -> Path:
        return self.path / self.RUN_ID

    @property
    def pending(self) -> Path:
        return self.path / self.PENDING

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def rows_cache(self) -> Path:
        return self.path / self.ROWS_CACHE

    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def heldout(self) -> Path:
        return self.path / self.HELDOUT

    @property
    def lighthouse(self) -> Path:
        return self.path / self.LIGHTHOUSE

    @property
    def replicas(self) -> Path:
        return self.path / self.REPLICAS

    @property
    def replicas_log(self) -> Path:
        return self.path / self.REPLICAS_LOG

    @property
    def resilient(self) -> Path:
        return self.path / self.RESILIENT

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    @property
    def samples(self) -> Path:
        return self.path / self.SAMPLES

    @property
    def generations(self) -> Path:
        return self.path / self.GENERATIONS

    @property
    def rows(self) -> Path:
        return self.path / self.ROWS

    @property
    def provenance(self) -> Path:
        return self.path / self.PROVENANCE

    @property
    def topics(self) -> Path:
        return self.path / self.TOPICS

    @property
    def summary(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def mlflow(self) -> Path:
        return self.path / self.MLFLOW
