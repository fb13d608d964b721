"""One replica of a resilient job: the compact training loop on a torchft Manager.

HF Trainer and TRL have no torchft integration, so this loop is the training layer's own, reusing its
data loading and validation, model loading, automatic hyperparameters, events and MLflow tracking. SFT
only for now (LoRA or full): the loss is on the answer (the last message, or the completion).

    python -m workers.training replica SPEC.json --index K --lighthouse http://HOST:PORT
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import socket
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from workers.training import data as data_module
from workers.training import tracking
from workers.training.events import EventWriter
from workers.training.folder import JobFolder
from workers.training.models import load_model, load_tokenizer, training_base
from workers.training.resilient import Resilience
from workers.training.spec import JobSpec
from workers.training.train import Interrupted, StopRequest, TrainingError, pick, plan_hparams, rows_read

SPAWNED_AT_ENV = "ATELIER_REPLICA_SPAWNED_AT"  # when the process was asked for: recovery time starts here
COMPLETE = "COMPLETE"


# Data -----------------------------------------------------------------------------------------------


def sft_examples(tokenizer: Any, rows: list[dict[str, Any]]) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) of each row, the loss on the answer only (the prompt's labels are -100)."""
    eos = tokenizer.eos_token or ""
    examples = []
    for row in rows:
        if "messages" in row:
            messages = row["messages"]
            prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
            full = tokenizer.apply_chat_template(messages, tokenize=False)
            answer = full[len(prompt) :] if full.startswith(prompt) else messages[-1]["content"] + eos
        else:
            value = row["prompt"]
            prompt = (
                tokenizer.apply_chat_template(value, tokenize=False, add_generation_prompt=True)
                if isinstance(value, list)
                else str(value)
            )
            completion = row["completion"]
            answer = (completion[-1]["content"] if isinstance(completion, list) else str(completion)) + eos
        p = tokenizer(prompt, add_special_tokens=False, verbose=False)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False, verbose=False)["input_ids"]
        examples.append((p + a, [-100] * len(p) + a))
    return examples


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in examples)
    return {
        "input_ids": torch.tensor([ids + [pad_id] * (width - len(ids)) for ids, _ in examples]),
        "labels": torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in examples]),
        "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in examples]),
    }


class Shards:
    """Each epoch is a seeded permutation of the rows; `consumed` counts the examples that committed
    steps used (all epochs). A step's global batch is the next participants × batch examples, and the
    replica of participating rank r takes the r-th slice: who is in the quorum may change every step,
    and the cursor moves only when a step commits."""

    def __init__(self, n_rows: int, seed: int) -> None:
        self.n_rows, self.seed = n_rows, seed
        self._orders: dict[int, list[int]] = {}

    def order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            self._orders = {
                epoch: random.Random(self.seed * 100_003 + epoch).sample(range(self.n_rows), self.n_rows)
            }
        return self._orders[epoch]

    def indices(self, consumed: int, rank: int, batch: int) -> list[int]:
        start = consumed + rank * batch
        return [self.order(i // self.n_rows)[i % self.n_rows] for i in range(start, start + batch)]


# The loop ------------------------------------------------------------------------------------------


def _lr(step: int, total: int, peak: float) -> float:
    """Linear warm-up over a twentieth of the steps, then cosine to zero (the plain runs' schedule)."""
    warmup = max(1, total // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _newest_state(folder: Path) -> Path | None:
    done = [p for p in folder.glob("step-*") if (p / COMPLETE).exists() and (p / "state.pt").exists()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _advertised_host(lighthouse: str) -> str:
    """The host name peers reach this replica's store and checkpoint server by."""
    if os.environ.get("ATELIER_REPLICA_HOST"):
        return os.environ["ATELIER_REPLICA_HOST"]
    host = urlparse(lighthouse).hostname or ""
    return "127.0.0.1" if host in ("localhost", "127.0.0.1", "::1") else socket.gethostname()


def _idle_priority(on: bool) -> None:
    """A warm spare loads and waits under SCHED_IDLE, so that it takes only the CPU time the training
    replicas leave (it shares their machine here); activated, it trains at normal priority again."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE if on else os.SCHED_OTHER, os.sched_param(0))


def _wait_for_activation(go: Path, output: Path) -> bool:
    """A warm spare waits here, loaded and idle, until it is activated (True) or the job ends."""
    while not go.exists():
        if StopRequest.requested or JobFolder(output).cancel.exists():
            return False
        time.sleep(0.01)
    return True


def params_digest(params: list[Any]) -> str:
    """A SHA-256 of the trainable parameters' bytes: equal digests, identical replicas."""
    import hashlib

    digest = hashlib.sha256()
    for p in params:
        digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def run_replica(
    spec: JobSpec, events: EventWriter, *, index: int, lighthouse: str, standby: bool = False
) -> dict[str, Any]:
    import torch
    from torch.distributed import TCPStore
    from torchft import Manager, ProcessGroupGloo

    spawned = float(os.environ.get(SPAWNED_AT_ENV) or time.time())
    config = Resilience.from_spec(spec.resilience, technique=spec.technique, method=spec.training.method)
    # Replicas share a machine's cores here; on their own machines set ATELIER_REPLICA_THREADS.
    torch.set_num_threads(int(os.environ.get("ATELIER_REPLICA_THREADS", "1")))
    events.emit("replica_started", replica=index, pid=os.getpid(), host=socket.gethostname())
    rows = data_module.load(spec.dataset, spec.technique, spec.column_map, data_format=spec.data_format)
    # An earlier job's adapter: train from its merged model (merged once, under a lock, whichever replica
    # comes first), so a LoRA result names a base every tool loads, as in a plain run.
    base = training_base(spec.model, scratch=spec.output / "base")
    tokenizer = load_tokenizer(base)
    rows = data_module.for_model(rows, tokenizer)
    torch.manual_seed(spec.training.seed)  # every replica starts from the same LoRA initialisation
    model = load_model(base, method="full")
    n_rows, n_params = len(rows), model.num_parameters()
    rows = pick(rows, rows_read(spec, n_rows, n_params))  # the rows its steps read, as a plain run's
    hparams, lengths = plan_hparams(spec, tokenizer, rows, n_params, model.config, False, n_rows=n_rows)
    if max(lengths) > hparams.max_length:
        raise TrainingError(
            f"Some rows are longer than the maximum length of {hparams.max_length} tokens (the longest has "
            f"{max(lengths)}). Raise the maximum length or shorten those rows."
        )
    if hparams.method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=hparams.lora_rank, lora_alpha=hparams.lora_alpha,
                               lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"))  # fmt: skip
    # A replica on a GPU machine trains on its GPU (fp32; gloo averages CUDA tensors through the host).
    device = (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if torch.cuda.is_available() else None
    )
    if device is not None:
        model.to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hparams.learning_rate, weight_decay=0.0)
    examples = sft_examples(tokenizer, rows)
    per_replica = hparams.batch_size * hparams.gradient_accumulation  # examples a replica takes a step
    shards = Shards(len(examples), hparams.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    cursor = {"consumed": 0}

    def state_dict() -> dict[str, Any]:
        return {"params": {n: p.detach() for n, p in zip(names, params, strict=True)},
                "optimizer": optimizer.state_dict(), "cursor": dict(cursor)}  # fmt: skip

    def load_state(state: dict[str, Any]) -> None:
        with torch.no_grad():
            for n, p in zip(names, params, strict=True):
                p.copy_(state["params"][n])
        optimizer.load_state_dict(state["optimizer"])
        cursor.update(state["cursor"])

    if standby:  # a warm spare: everything loaded, nothing heartbeating until a replica is lost
        events.emit("replica_standby", replica=index, seconds_since_spawn=round(time.time() - spawned, 3))
        if not _wait_for_activation(spec.folder.replica_flag(index, "go"), spec.output):
            return events.emit("replica_done", replica=index, step=0, standby=True)
        go = spec.folder.replica_flag(index, "go")
        spawned = float(go.read_text() or time.time())  # recovery is measured from the activation
        _idle_priority(False)
        events.emit("replica_activated", replica=index)
    store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    # Disk checkpoints are the last line of defence: a replica that finds one starts from it, and peers
    # ahead of it heal it anyway.
    saved = _newest_state(spec.folder.resilient)
    disk = torch.load(saved / "state.pt", weights_only=True, map_location=device or "cpu") if saved else None
    if disk:
        load_state(disk["user"])
    timeout = timedelta(seconds=config.timeout_seconds)
    # Created last: a manager heartbeats from here on, and quorums wait for heartbeating replicas.
    manager = Manager(
        pg=ProcessGroupGloo(timeout=timeout), min_replica_size=config.min_replicas,
        load_state_dict=load_state, state_dict=state_dict, replica_id=f"replica{index}",
        lighthouse_addr=lighthouse, store_addr="127.0.0.1", store_port=store.port, rank=0, world_size=1,
        hostname=_advertised_host(lighthouse), timeout=timeout, quorum_timeout=timedelta(hours=1),
        connect_timeout=timeout, init_sync=False,
    )  # fmt: skip
    if disk:
        manager.load_state_dict(disk["torchft"])
        events.emit("resumed", replica=index, step=manager.current_step(), path=str(saved))
    events.emit("replica_ready", replica=index, step=manager.current_step(), device=str(device or "cpu"),
                seconds_since_spawn=round(time.time() - spawned, 3))  # fmt: skip
    tracker = None
    if spec.tracking.enabled:  # the coordinator made the run; every replica may lead, so each attaches
        tracker, _ = tracking.start(tracking_uri=spec.tracking.tracking_uri, experiment=spec.tracking.experiment,
                                    run_name=spec.tracking.run_name, output=spec.output, params={})  # fmt: skip
    leave = spec.folder.replica_flag(index, "leave")
    first_commit = True
    leader = False
    loss_value = math.nan
    pace: float | None = None  # a moving average of the step time, for the ETA
    try:
        while manager.current_step() < hparams.max_steps:
            if StopRequest.requested or leave.exists() or spec.folder.cancel.exists():
                break
            started, before = time.monotonic(), manager.current_step()
            for p in params:
                p.grad = None
            manager.start_quorum()
            participants, rank = manager.num_participants(), manager.participating_rank()
            # This replica's share of the step: batch × accumulation examples, in micro-batches.
            chosen = shards.indices(cursor["consumed"], rank or 0, per_replica)
            total = 0.0
            for start in range(0, per_replica, hparams.batch_size):
                batch = collate([examples[i] for i in chosen[start : start + hparams.batch_size]], pad)
                if device is not None:
                    batch = {k: v.to(device) for k, v in batch.items()}
                loss = model(**batch).loss / hparams.gradient_accumulation
                loss.backward()
                total += float(loss.detach())
            # One flat fault-tolerant allreduce: every gradient, and the loss for the log. A replica that
            # is healing contributes zeros; the average is over the participants.
            flat = torch.cat(
                [p.grad.flatten() for p in params] + [torch.tensor([total], device=params[0].device)]
            )
            manager.allreduce(flat).wait()
            offset = 0
            for p in params:
                p.grad.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
            if not manager.should_commit():
                events.emit("step_failed", replica=index, step=before + 1,
                            error=str(manager.errored() or "the quorum changed")[:300])  # fmt: skip
                continue
            # A replica that healed got the peers' state at should_commit: the cursor and step are theirs.
            step = manager.current_step()
            for group in optimizer.param_groups:
                group["lr"] = _lr(step - 1, hparams.max_steps, hparams.learning_rate)
            optimizer.step()
            cursor["consumed"] += participants * per_replica
            loss_value = float(flat[-1])
            elapsed = time.monotonic() - started
            if step - before > 1:
                events.emit("replica_healed", replica=index, step=step, from_step=before,
                            seconds=round(elapsed, 3))  # fmt: skip
            if first_commit:
                first_commit = False
                events.emit("replica_recovered", replica=index, step=step,
                            recovery_seconds=round(time.time() - spawned, 3))  # fmt: skip
            leader = rank == 0
            if not leader:  # every commit is on record even when the leader dies before it writes its event
                events.emit("commit", replica=index, step=step, participants=participants,
                            step_seconds=round(elapsed, 4))  # fmt: skip
            if leader:
                metrics: dict[str, Any] = {}
                if step % hparams.logging_steps == 0 or step == hparams.max_steps:
                    metrics = {"loss": loss_value, "grad_norm": grad_norm, "participants": participants,
                               "learning_rate": optimizer.param_groups[0]["lr"]}  # fmt: skip
                    if tracker is not None:
                        tracker.log_metrics(metrics, step=step)
                pace = elapsed if pace is None else 0.9 * pace + 0.1 * elapsed
                events.emit("step", replica=index, step=step, max_steps=hparams.max_steps, participants=participants,
                            step_seconds=round(elapsed, 4), metrics=metrics,
                            eta_seconds=round(pace * (hparams.max_steps - step), 1))  # fmt: skip
                if step % hparams.save_steps == 0 or step == hparams.max_steps:
                    _save_state(
                        spec.folder.resilient, step, {"user": state_dict(), "torchft": manager.state_dict()}
                    )
                    events.emit("checkpoint", step=step, path=str(spec.folder.resilient / f"step-{step}"))
    finally:
        manager.shutdown(wait=False)
    step = manager.current_step()
    if leave.exists() and step < hparams.max_steps and not spec.folder.cancel.exists():
        leave.unlink(missing_ok=True)
        events.emit("replica_left", replica=index, step=step)
        return {"event": "replica_left"}
    if StopRequest.requested and step < hparams.max_steps:
        raise Interrupted(step)
    digest = params_digest(params)
    if not leader:
        return events.emit("replica_done", replica=index, step=step, params_sha256=digest)
    kind = "model" if hparams.method == "full" else "adapter"
    artifact = spec.folder.artifact(kind)
    model.save_pretrained(artifact, safe_serialization=True)
    tokenizer.save_pretrained(artifact)
    result = {"train_loss": loss_value, "global_step": step,
              "replica_steps": manager.batches_committed()}  # fmt: skip
    info = (
        tracker.finish(artifact=artifact, kind=kind, register_as=spec.tracking.register_as, metrics=result)
        if tracker
        else None
    )
    return events.emit("finished", replica=index, artifacts={kind: str(artifact)}, metrics=result, mlflow=info,
                       params_sha256=digest,
                       hparams=asdict(hparams), cancelled=spec.folder.cancel.exists())  # fmt: skip


def _save_state(folder: Path, step: int, state: dict[str, Any]) -> None:
    """step-N/state.pt, then the COMPLETE marker: a folder without it was cut short and is never read."""
    import torch

    target = folder / f"step-{step}"
    target.mkdir(parents=True, exist_ok=True)
    torch.save(state, target / "state.pt")
    (target / COMPLETE).write_text(json.dumps({"step": step, "time": time.time()}))
    for old in sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[:-2]:
        for f in old.iterdir():
            f.unlink()
        old.rmdir()


def replica_and_report(spec_path: Path, index: int, lighthouse: str, standby: bool = False) -> int:
    """The CLI's `replica`: one replica's events go to the job's events file, tagged with its index."""
    from workers.training.train import report_events

    if standby:
        _idle_priority(True)
    return report_events(
        spec_path,
        JobSpec.load,
        lambda spec, events: run_replica(spec, events, index=index, lighthouse=lighthouse, standby=standby),
    )
