"""The Django side of resilient jobs: replicas as tasks on the training queues, one a worker.

The worker that claims a resilient job (workers.runner.job_run) runs its coordinator (the torchft
Lighthouse, `python -m workers.training coordinate`) and a replica of its own, and sends one message a
missing replica to the job's queue. A worker that finds no waiting job takes a place in a running
resilient job below its maximum (`replica_claim_next`) and runs one replica process (`replica_run`),
starting a new one when it dies (it heals from a peer). Waiting jobs come first: a job that waited longer
than JOB_PREEMPT_AFTER_SECONDS makes one replica above the minimum leave at a step boundary
(`replicas_preempt`), and when a worker frees up the job grows again (`replicas_wanted`).

Each replica is a row (apps.jobs.models.Replica) with a lease its worker renews; the reaper ends the rows
whose worker died. The replicas' own events (spawned, died, healed, left) go to the job's events file,
where the job page reads the timeline.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone

from apps.jobs.models import WAITING, Job, Replica, Status
from workers.processes import die_with_parent, kill_group
from workers.training.events import EventWriter
from workers.training.folder import Exit

log = logging.getLogger("atelier.replicas")

MAX_RESTARTS_WITHOUT_PROGRESS = 5


def _lease() -> datetime:
    return timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)


def _active(job: Job) -> int:
    return Replica.objects.filter(job=job, ended_at__isnull=True).count()


def replica_claim(job: Job, worker: str) -> Replica | None:
    """A new place in `job` for `worker`, or None when the job has its maximum or is not running."""
    maximum = int(job.resilience.get("max_replicas", 1))
    for _ in range(5):
        try:
            with transaction.atomic():
                # A job whose replicas trained every step is only wrapping up (its coordinator saves the
                # model and closes its MLflow run): a worker freed by its own replica must not join it.
                running = Job.objects.filter(pk=job.pk, status=Status.RUNNING).exclude(
                    max_steps__gt=0, step__gte=F("max_steps")
                )
                if not running.exists() or _active(job) >= maximum:
                    return None
                highest = Replica.objects.filter(job=job).aggregate(n=Max("number"))["n"]
                number = 0 if highest is None else highest + 1
                return Replica.objects.create(job=job, number=number, worker=worker, lease_until=_lease())
        except IntegrityError:
            continue  # another worker took that number: count again
    return None


def _growing(queue: str) -> list[Job]:
    """Running resilient jobs of the queue below their maximum, first in the queue first."""
    jobs = Job.objects.filter(queue=queue, status=Status.RUNNING, spec__has_key="resilience").annotate(
        live=Count("replicas", filter=Q(replicas__ended_at__isnull=True))
    )
    return [
        j
        for j in jobs.order_by("position", "pk")
        if j.resilience and j.live < j.resilience.get("max_replicas", 1)
    ]


def replicas_wanted(queue: str) -> bool:
    return bool(_growing(queue))


def replica_claim_next(*, queue: str, worker: str) -> Replica | None:
    for job in _growing(queue):
        if job.files.lighthouse.exists() and (replica := replica_claim(job, worker)):
            return replica
    return None


@dataclass
class ReplicaProcess:
    """A replica row's process: started, restarted when it dies while the job runs, told to leave."""

    replica: Replica
    events: EventWriter
    proc: subprocess.Popen[bytes] | None = None
    step_at_restart: list[int] = field(default_factory=list)
    over: str = ""  # why this replica ended, once it has

    @property
    def job(self) -> Job:
        return self.replica.job

    def start(self, step: int = 0) -> None:
        from workers.training.resilient.group import spawn_replica

        folder = self.job.files
        lighthouse = folder.lighthouse.read_text().strip()
        with folder.replicas_log.open("ab") as log_file:
            self.proc = spawn_replica(folder.spec, self.replica.number, lighthouse, log_file,
                                      preexec_fn=die_with_parent)  # fmt: skip
        self.events.emit("replica_spawned", replica=self.replica.number, worker=self.replica.worker, step=step,
                         replacement=self.replica.restarts > 0)  # fmt: skip

    def tick(self, step: int) -> bool:
        """Renew the lease, pass on a leave request, replace a dead process; False once it is over."""
        if self.over:
            return False
        row = Replica.objects.filter(pk=self.replica.pk, ended_at__isnull=True)
        if not row.update(lease_until=_lease()):
            return self._end("its lease ran out", kill=True)
        self.replica.refresh_from_db(fields=["leave_requested"])
        leave = self.job.files.replica_flag(self.replica.number, "leave")
        if self.replica.leave_requested and not leave.exists():
            leave.parent.mkdir(exist_ok=True)
            leave.touch()
            self.events.emit("replica_leaving", replica=self.replica.number, step=step)
        assert self.proc is not None
        code = self.proc.poll()
        if code is None:
            return True
        if code == Exit.OK:  # done, left, or finished the job
            return self._end("left for a waiting job" if self.replica.leave_requested else "done")
        self.events.emit("replica_died", replica=self.replica.number, step=step, exit_code=code,
                         reason=f"signal {-code}" if code < 0 else f"exit status {code}")  # fmt: skip
        self.step_at_restart.append(step)
        recent = self.step_at_restart[-MAX_RESTARTS_WITHOUT_PROGRESS - 1 :]
        if len(recent) > MAX_RESTARTS_WITHOUT_PROGRESS and recent[0] == recent[-1]:
            return self._end("its process kept failing (see replicas.log)")
        Replica.objects.filter(pk=self.replica.pk).update(restarts=self.replica.restarts + 1)
        self.replica.restarts += 1
        self.start(step)
        return True

    def _end(self, reason: str, kill: bool = False) -> bool:
        if kill:
            self.stop()
        self.over = reason
        Replica.objects.filter(pk=self.replica.pk, ended_at__isnull=True).update(
            ended_at=timezone.now(), end_reason=reason[:200]
        )
        return False

    def stop(self, grace: float = 0.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace)
        kill_group(self.proc)
        self.proc.wait()

    def finish(self, reason: str) -> None:
        """The job ended: give the process a moment to report, then end the row."""
        self.stop(grace=10.0)
        self._end(reason)


def replica_run(replica: Replica) -> None:
    """Run a claimed replica until it is done, leaves, or its job ends."""
    events = EventWriter(replica.job.files.events, to_stdout=False)
    process = ReplicaProcess(replica, events)
    try:
        process.start(Job.objects.values_list("step", flat=True).get(pk=replica.job_id))
        while True:
            status, step = Job.objects.values_list("status", "step").get(pk=replica.job_id)
            if status not in (Status.RUNNING, Status.CANCELLING):
                process.finish(f"the job is {status}")
                return
            if not process.tick(step):
                return
            time.sleep(0.5)
    except BaseException:
        process.stop()
        process._end("its worker stopped")
        raise
    finally:
        events.close()


def replicas_reap(now: datetime) -> list[int]:
    """End the replica rows whose worker stopped renewing (it died with its replica); the job goes on
    with the others and grows again when a worker is free."""
    expired = Replica.objects.filter(ended_at__isnull=True, lease_until__lt=now)
    pks = list(expired.values_list("pk", flat=True))
    expired.filter(pk__in=pks).update(ended_at=now, end_reason="its worker stopped answering")
    return pks


def replicas_preempt(now: datetime) -> list[int]:
    """A job that waited longer than JOB_PREEMPT_AFTER_SECONDS gets a worker from a running resilient
    job above its minimum: that job's newest replica is asked to leave at its next step boundary."""
    since = now - timedelta(seconds=settings.JOB_PREEMPT_AFTER_SECONDS)
    asked = []
    for queue in set(
        Job.objects.filter(status__in=WAITING, created_at__lt=since).values_list("queue", flat=True)
    ):
        waiting = Job.objects.filter(queue=queue, status__in=WAITING, created_at__lt=since).count()
        leaving = Replica.objects.filter(
            job__queue=queue, ended_at__isnull=True, leave_requested=True
        ).count()
        for job in Job.objects.filter(queue=queue, status=Status.RUNNING, spec__has_key="resilience"):
            if leaving >= waiting:
                break
            live = Replica.objects.filter(job=job, ended_at__isnull=True, leave_requested=False)
            if live.count() <= int(job.resilience.get("min_replicas", 1)):
                continue
            # Never the coordinator's own replica (its worker holds the job): the newest other one.
            newest = live.exclude(worker=job.worker).order_by("-number").first()
            if newest is not None and Replica.objects.filter(pk=newest.pk, leave_requested=False).update(
                leave_requested=True
            ):
                log.info("replica %s of job %s asked to leave for a waiting job", newest.number, job.pk)
                asked.append(newest.pk)
                leaving += 1
    return asked
