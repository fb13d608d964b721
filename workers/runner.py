"""The Django side of a job: claim the next waiting job of a queue, run its kind's training-layer command
in its own process group, tail its events into the job row, renew the lease, and honour cancellation.
The same for every kind of job: what differs (the command, the spec's worker-filled parts, keys, the
after-success hook) is declared by the kind (apps.jobs.kinds). The training itself never runs in the
worker process (a worker that ran torch before forking hung, DESIGN.md).

Safe to run twice: claiming is a conditional UPDATE, and a task that finds nothing to claim returns.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.jobs.kinds import kind_of
from apps.jobs.models import WAITING, Job, Outcome, Replica, Status
from apps.jobs.services import enqueue, transition
from apps.secrets.services import KeyUnavailable
from workers.processes import die_with_parent, kill_group, signal_group
from workers.replicas import (
    replica_claim_next,
    replica_run,
    replicas_preempt,
    replicas_reap,
    replicas_wanted,
)
from workers.training.events import read_new_events
from workers.training.folder import Exit, JobFolder

log = logging.getLogger("atelier.runner")

ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 60
METRIC_KEYS = ("loss", "reward", "learning_rate", "grad_norm", "rewards/accuracies", "rewards/margins")
POLL_SECONDS = 0.5
# How long a new trainer waits for an earlier one of the same job to die after SIGKILL.
LOCK_WAIT_SECONDS = 15.0


def lease_until() -> Any:
    return timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)


def job_claim_next(*, queue: str, worker: str) -> Job | None:
    """The first waiting job of the queue, now running on `worker`; None when there is none."""
    for _ in range(20):
        job = Job.objects.filter(queue=queue, status__in=WAITING).order_by("position", "pk").first()
        if job is None:
            return None
        claimed = Job.objects.filter(pk=job.pk, status__in=WAITING).update(
            status=Status.RUNNING,
            worker=worker,
            lease_until=lease_until(),
            started_at=job.started_at or timezone.now(),
            attempts=F("attempts") + 1,
            error="",
        )
        if claimed:
            job.refresh_from_db()
            return job
    return None  # lost every race: another worker is taking them


def training_spec(job: Job) -> dict[str, Any]:
    """The job's spec with what the runner owns filled in: the job's id and what its kind fills in (the
    tracking server, an endpoint's place behind the gateway). Its folder is filled in as the spec is
    written there (JobFolder.write_spec)."""
    spec = copy.deepcopy(job.spec)  # the runner fills in nested parts (keys' variables); the row stays
    spec["job_id"] = str(job.pk)
    kind_of(job).complete(job, spec)
    return spec


@dataclass
class _Tail:
    """What the supervising loop has read so far from the events file."""

    offset: int = 0
    last: dict[str, Any] | None = None
    outcome: dict[str, Any] | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    new_points: list[dict[str, Any]] = field(default_factory=list)
    new_guardrails: list[dict[str, Any]] = field(default_factory=list)
    log_size: int = -1
    renewed: float = 0.0
    # Set by a `resumed` event: the chart's points past this step were redone, so they go.
    resumed_at: int | None = None

    def read(self, path: Path) -> None:
        new, self.offset = read_new_events(path, self.offset)
        for event in new:
            self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        self.last = event
        kind = event.get("event")
        # A resilient job's replicas and coordinator share the file: the job's outcome is its `finished`
        # event, or a `failed` one that is not a replica's crash (a replacement takes a crashed one's place).
        if kind == "finished" or (kind == "failed" and "replica" not in event):
            self.outcome = event
        if kind == "step":
            self.changes["step"] = event["step"]
            self.changes["max_steps"] = event.get("max_steps")
            self.changes["eta_seconds"] = event.get("eta_seconds")
            metrics = event.get("metrics") or {}
            point = {k: metrics[k] for k in METRIC_KEYS if isinstance(metrics.get(k), int | float)}
            if point:
                self.new_points.append({"step": event["step"], **point})
        elif kind == "heldout" and isinstance(event.get("score"), int | float):
            # The held-out sample's score during training: a point of the chart beside loss and reward.
            point = {"step": int(event.get("step") or 0), "heldout": float(event["score"])}
            point |= {"heldout_n": event.get("n"), "heldout_grader": event.get("grader")}
            point |= {"heldout_best": bool(event.get("best"))}
            self.new_points.append(point)
        elif kind == "guardrail":
            self.new_guardrails.append(
                {k: event.get(k) for k in ("step", "code", "level", "message")}
                | {"level": event.get("level") or "warning"}
            )
        elif kind == "configured":
            self.changes["max_steps"] = (event.get("hparams") or {}).get("max_steps")
        elif kind == "resumed":
            self.changes["step"] = event.get("step", 0)
            self.resumed_at = int(event.get("step") or 0)
            self.new_points = [p for p in self.new_points if p["step"] <= self.resumed_at]
            self.new_guardrails = [g for g in self.new_guardrails if (g.get("step") or 0) <= self.resumed_at]


def merge_points(points: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chart's points with the new ones added, one point per step in step order: a held-out score
    logged for a step that already has its loss joins that point, whichever came first."""
    merged = [dict(p) for p in points]
    for point in new:
        same = next((p for p in reversed(merged[-8:]) if p.get("step") == point.get("step")), None)
        if same is not None:
            same |= point
        elif merged and (merged[-1].get("step") or 0) > (point.get("step") or 0):
            merged.append(dict(point))
            merged.sort(key=lambda p: p.get("step") or 0)  # stable: the chart's x axis must ascend
        else:
            merged.append(dict(point))
    return merged


def merge_guardrails(shown: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The guardrail messages with the new ones added: one entry per code and level, whose `step` is the
    latest it was raised at and `since` the first, so a warning raised at every log is one message."""
    merged = [dict(g) for g in shown]
    for g in new:
        same = next(
            (m for m in merged if (m.get("code"), m.get("level")) == (g.get("code"), g.get("level"))), None
        )
        if same is None:
            merged.append({**g, "since": g.get("step")})
        else:
            same |= {"step": g.get("step"), "message": g.get("message") or same.get("message")}
    return merged


def _log_tail(path: Path) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 16_000))
        lines = f.read().decode(errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _folder_lock(folder: JobFolder) -> int | None:
    """A descriptor holding the job folder's lock, for the new trainer to inherit; None when an earlier
    trainer of the job still holds it after being killed. The earlier one is alive when its worker died
    without taking it along (PR_SET_PDEATHSIG covers the worker's death, not a pool child that lives on
    after its worker's main process): two trainers writing checkpoints into one folder would run the job
    twice, so the newer one waits for the older to be gone."""
    fd = os.open(folder.lock, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    killed = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if not killed:
                killed = True
                _kill_earlier_trainer(folder)
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.2)


def _kill_earlier_trainer(folder: JobFolder) -> None:
    """SIGKILL the process group of the trainer that the folder's trainer file names, if it runs on this
    machine and is a trainer (a pid can be reused); on another machine its own worker's lease takes care
    of it."""
    try:
        held = json.loads(folder.trainer.read_text())
        pgid = int(held["pgid"])
        if held.get("host") != socket.gethostname():
            return
        cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return
    if b"workers.training" in cmdline:
        log.warning("killing an earlier trainer (process group %s) that still held %s", pgid, folder.path)
        kill_group(pgid)


def job_run(job: Job) -> None:
    """Run a claimed job to its end (or until it is taken away from this worker): its kind's command,
    supervised the same way whatever the kind."""
    kind = kind_of(job)
    folder = job.files
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.cancel.unlink(missing_ok=True)
    spec = training_spec(job)
    try:
        keys = kind.keys(job, spec)
        # The spec names the variables; their values (keys) are only in the trainer's environment.
        spec_path = folder.write_spec(spec)
        key, env = _run_key(job)
    except KeyUnavailable as exc:
        transition(job, Status.FAILED, where={"worker": job.worker}, error=str(exc), finished_at=timezone.now(),
                   lease_until=None, eta_seconds=None)  # fmt: skip
        return
    env = {**training_env(), **keys, **env}
    # A resumed attempt reads the events file from its start and rebuilds the chart and the guardrails:
    # the worker that died may not have saved its last second of events (a step's point went missing from
    # the chart while MLflow had it). The file is the run's history in order, `resumed` events included.
    tail = _Tail()
    if folder.events.exists():
        job.metrics, job.guardrails = [], []
    lock = _folder_lock(folder)
    if lock is None:
        _run_key_revoke(job, key)
        log.error("job %s: an earlier trainer still holds %s; giving the job back", job.pk, folder.path)
        if transition(job, Status.INTERRUPTED, where={"worker": job.worker}, lease_until=None, worker=""):
            enqueue(job.queue)
        return
    # What the kind runs beside its process (a resilient job: a replica of this worker's own).
    companion = kind.companion(job) if kind.companion is not None else None
    with folder.log.open("ab") as log_file:
        # Its own session (process group), so cancelling can signal the trainer and anything it started.
        # It inherits the folder's lock (pass_fds) and holds it for as long as it lives.
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.training", kind.command, str(spec_path)],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
            start_new_session=True, preexec_fn=die_with_parent,  # the prefork child runs no threads
            env=env, pass_fds=(lock,),
        )  # fmt: skip
    os.close(lock)
    folder.trainer.write_text(json.dumps({"host": socket.gethostname(), "pgid": proc.pid}))
    cancel_since: float | None = None
    terminated = False
    try:
        while True:
            code = proc.poll()
            tail.read(folder.events)
            if not _save_progress(job, tail, folder.log):
                # The reaper gave this job to another worker (our lease ran out): stop, do not compete.
                log.warning("job %s was taken from this worker; stopping its trainer", job.pk)
                signal_group(proc, signal.SIGKILL)
                proc.wait()
                return
            if code is not None:
                break
            if companion is not None:
                companion.tick(job)
            if job.status == Status.CANCELLING:
                now = time.monotonic()
                if cancel_since is None:
                    cancel_since = now
                    folder.cancel.touch()
                grace = settings.JOB_CANCEL_GRACE_SECONDS
                if now - cancel_since > 2 * grace:
                    signal_group(proc, signal.SIGKILL)
                elif now - cancel_since > grace and not terminated:
                    terminated = True
                    signal_group(proc, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(POLL_SECONDS)  # returns at once when the trainer exits
    except BaseException:
        signal_group(proc, signal.SIGKILL)
        raise
    finally:
        if companion is not None:
            companion.close()
        _run_key_revoke(job, key)  # on success, failure, cancel and a crash of the worker's own code alike
    _finish(job, code, tail, folder.log)


def _renew_every() -> float:
    """How often the lease is renewed when nothing else changed: a fifth of it, between 0.5 and 5 s."""
    return max(0.5, min(5.0, settings.JOB_LEASE_SECONDS / 5))


def training_env() -> dict[str, str]:
    """The trainer's environment: no key variable of the worker's own, and the outbound policy."""
    from apps.secrets.services import training_process_env

    return training_process_env()


def _job_keys(job: Job, spec: dict[str, Any]) -> dict[str, str]:
    """The keys the job's judge or teacher chose (a project secret or an allowed worker variable, by
    name): decrypted here, for this job's project only, and put in the fixed variable that the spec
    now names, as its kind says. KeyUnavailable when one cannot be had."""
    return kind_of(job).keys(job, spec)


def _run_key(job: Job) -> tuple[Any, dict[str, str]]:
    """A job whose teacher or judge is one of the project's endpoints gets an API key for this run only,
    in its environment (never in a file); revoked when the run ends (_run_key_revoke)."""
    chosen = kind_of(job).endpoint_role(job.spec)
    if chosen is None:
        return None, {}
    role, env = chosen
    from django.core.exceptions import PermissionDenied

    from apps.endpoints.services import run_key_create

    try:
        key, secret = run_key_create(
            project=job.project, user=job.created_by, role=role, run=f"job #{job.pk}"
        )
    except PermissionDenied as exc:
        raise KeyUnavailable(
            f"The {role} is one of the project's endpoints, but the person who started this job can no longer "
            f"make API keys in the project ({exc}): an editor can start it again."
        ) from exc
    return key, {env: secret}


def _run_key_revoke(job: Job, key: Any) -> None:
    if key is not None:
        from apps.endpoints.services import run_key_revoke

        run_key_revoke(api_key=key)


def _save_progress(job: Job, tail: _Tail, log_path: Path) -> bool:
    """Write what was read, renew the lease, and learn whether someone asked to cancel. False when the
    job is no longer this worker's. Writes only when something changed or the lease is due, so that
    supervising costs the trainer next to nothing."""
    fields: dict[str, Any] = dict(tail.changes)
    size = log_path.stat().st_size if log_path.exists() else 0
    if size != tail.log_size:
        tail.log_size = size
        fields["log_tail"] = _log_tail(log_path)
    if tail.resumed_at is not None:
        # The steps after the checkpoint it resumed from are done again: their new points replace these.
        job.metrics = [p for p in job.metrics if p.get("step", 0) <= tail.resumed_at]
        fields["metrics"] = job.metrics
        job.guardrails = [g for g in job.guardrails if (g.get("step") or 0) <= tail.resumed_at]
        fields["guardrails"] = job.guardrails
        tail.resumed_at = None
    if tail.new_points:
        job.metrics = merge_points(job.metrics, tail.new_points)
        fields["metrics"] = job.metrics
    if tail.new_guardrails:
        job.guardrails = merge_guardrails(job.guardrails, tail.new_guardrails)
        fields["guardrails"] = job.guardrails
    run_id_file = job.files.run_id
    if not job.mlflow_run_id and run_id_file.exists():
        fields["mlflow_run_id"] = run_id_file.read_text().strip()
    now = time.monotonic()
    if fields or now - tail.renewed >= _renew_every():
        fields["lease_until"] = lease_until()
        tail.renewed = now
        updated = Job.objects.filter(
            pk=job.pk, status__in=(Status.RUNNING, Status.CANCELLING), worker=job.worker
        ).update(**fields)
        tail.changes, tail.new_points, tail.new_guardrails = {}, [], []
        for name, value in fields.items():
            setattr(job, name, value)
        if not updated:
            return False
    job.status = Job.objects.values_list("status", flat=True).get(pk=job.pk)
    return job.status in (Status.RUNNING, Status.CANCELLING)


def _finish(job: Job, code: int, tail: _Tail, log_path: Path) -> None:
    last = tail.outcome or tail.last or {}
    kind = last.get("event")
    declared = kind_of(job)
    now = timezone.now()
    common = {"finished_at": now, "lease_until": None, "log_tail": _log_tail(log_path), "eta_seconds": None}
    cancelling = job.status == Status.CANCELLING
    mine = {"worker": job.worker}  # never end a job that the reaper has given to another worker
    if kind == "finished" and not last.get("cancelled"):
        # A training job's verdict on its held-out rows: succeeded, and better, the same, or worse.
        result = last.get("metrics") or {}
        verdict = result.get("verdict") if declared.verdict else None
        outcome = verdict if verdict in Outcome.values else Outcome.UNKNOWN
        common |= {
            "outcome": outcome,
            "outcome_reason": str(result.get("verdict_reason") or "") if outcome else "",
        }
        # One transaction: whoever sees the job succeeded sees what its kind does after a success too (a
        # training job's automatic evaluation, a generation's rows; a test read the job before its
        # evaluation existed), and a worker that dies between the two cannot leave a success without it.
        with transaction.atomic():
            done = transition(job, Status.SUCCEEDED, where=mine, result=result,
                              artifacts=last.get("artifacts") or {},
                              mlflow_run_id=(last.get("mlflow") or {}).get("run_id") or job.mlflow_run_id, **common)  # fmt: skip
            if done and declared.after_success is not None:
                try:
                    with transaction.atomic():  # a savepoint: a hook's failure never undoes the success
                        declared.after_success(job)
                except Exception:
                    log.exception("job %s: the after-success work failed", job.pk)
    elif cancelling or (kind == "finished" and last.get("cancelled")):
        done = transition(job, Status.CANCELLED, where=mine, artifacts=last.get("artifacts") or {}, **common)
    elif kind == "failed":
        done = transition(
            job, Status.FAILED, where=mine, error=last.get("message") or "Training failed.", **common
        )
    elif code == Exit.INTERRUPTED:
        # Stopped from outside (a machine shutting down): queue it again to resume.
        done = transition(job, Status.INTERRUPTED, where=mine, lease_until=None, worker="")
        if done:
            enqueue(job.queue)
    else:
        reason = f"signal {-code}" if code < 0 else f"exit status {code}"
        message = f"The training process ended without a result ({reason})."
        if code == -signal.SIGKILL:
            message += (
                " It was killed, often because the machine ran out of memory: try a smaller batch or LoRA."
            )
        done = transition(job, Status.FAILED, where=mine, error=message, **common)
    if not done:
        log.warning("job %s changed status while it finished; left as %s", job.pk, job.status)


def job_run_next(*, queue: str, worker: str | None = None) -> int | None:
    """Claim and run the next waiting job of `queue`; its id, or None when none was waiting."""
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    job = job_claim_next(queue=queue, worker=worker)
    if job is None:
        # No job waits: join a running resilient job that has room for another replica.
        replica = replica_claim_next(queue=queue, worker=worker)
        if replica is not None:
            replica_run(replica)
            _regrow(queue)
        return None
    job_run(job)
    _regrow(queue)
    return job.pk


def _regrow(queue: str) -> None:
    """This worker is free again: if a resilient job of its queue is below its maximum, say so (the
    message waits behind any waiting job's, which comes first)."""
    if replicas_wanted(queue):
        enqueue(queue)


def jobs_release(node: str) -> list[int]:
    """Queue again at once the jobs that a worker of this name held when it died, as it starts again
    (Celery's worker_ready): their trainers died with it, so waiting for the lease to run out would only
    show "running" on a job that is not. Names are `node:pid` (node = Celery's `name@host`), so this
    matches only this worker's jobs, on any machine; a worker that never comes back is left to the
    reaper's lease. Replicas it ran leave their jobs the same way."""
    now = timezone.now()
    prefix = f"{node}:"
    Replica.objects.filter(worker__startswith=prefix, ended_at__isnull=True).update(
        ended_at=now, end_reason="its worker restarted"
    )
    requeued = []
    for job in Job.objects.filter(worker__startswith=prefix, status__in=(Status.RUNNING, Status.CANCELLING)):
        mine = {"worker": job.worker, "status": job.status}
        if job.status == Status.CANCELLING:
            transition(job, Status.CANCELLED, where=mine, finished_at=now, lease_until=None)
        elif transition(job, Status.INTERRUPTED, where=mine, lease_until=None, worker="", eta_seconds=None):
            log.warning("job %s lost its worker %s (restarted); queued to resume", job.pk, node)
            enqueue(job.queue)
            requeued.append(job.pk)
    return requeued


def jobs_reap() -> list[int]:
    """Queue again the running jobs whose worker stopped renewing their lease (it died); they resume from
    their newest complete checkpoint. A job being cancelled whose worker died is simply cancelled."""
    now = timezone.now()
    replicas_reap(now)
    replicas_preempt(now)
    expired = Job.objects.filter(status__in=(Status.RUNNING, Status.CANCELLING), lease_until__lt=now)
    requeued = []
    for job in expired:
        # The lease is checked again in the UPDATE: the worker may have renewed it since the SELECT.
        still = {"lease_until__lt": now, "status": job.status}
        if job.status == Status.CANCELLING:
            transition(job, Status.CANCELLED, where=still, finished_at=now, lease_until=None)
            continue
        if transition(job, Status.INTERRUPTED, where=still, lease_until=None, worker=""):
            log.warning("job %s lost its worker (lease expired); queued to resume", job.pk)
            enqueue(job.queue)
            requeued.append(job.pk)
    # A queue whose jobs wait while none of its jobs runs has lost its message (a Redis restarted without
    # its data, a worker killed between taking a message and claiming a job): send one again. A spare
    # message is harmless; the task returns when it finds nothing to claim.
    stale = now - timedelta(seconds=max(60.0, 2 * settings.JOB_LEASE_SECONDS))
    busy = set(
        Job.objects.filter(status__in=(Status.RUNNING, Status.CANCELLING)).values_list("queue", flat=True)
    )
    for queue in set(
        Job.objects.filter(status__in=WAITING, created_at__lt=stale).values_list("queue", flat=True)
    ):
        if queue not in busy:
            enqueue(queue)
    return requeued
