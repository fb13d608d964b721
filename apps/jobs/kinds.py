"""The kinds of job, each declared in one place: the training layer's command it runs (`python -m
workers.training COMMAND SPEC.json`), what the worker fills into its spec (the tracking server, an
endpoint's place behind the gateway), the keys its judge or teacher needs, the project endpoint it may
call with a key made for the run, and its after-success hook. The runner (workers.runner) is generic:
it runs whatever kind_of(job) declares and never asks which kind a job is.

A resilient training job is a kind of its own here: its command is the coordinator, and a replica runs
beside it on the same worker (ResilientReplica); other workers join with theirs (workers.replicas).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings

from apps.core.mlflow_proxy import experiment_name
from apps.jobs.models import Job, Kind
from apps.secrets.services import KeyUnavailable
from workers.training.keys import JUDGE_KEY_ENV, TEACHER_KEY_ENV

if TYPE_CHECKING:
    from workers.replicas import ReplicaProcess
    from workers.training.events import EventWriter


class Companion(Protocol):
    """What a kind runs beside its training process on the worker, supervised by the same loop."""

    def tick(self, job: Job) -> None:
        """Called every turn of the supervising loop while the process runs."""

    def close(self) -> None:
        """The process ended (or the worker is stopping): end what was started."""


@dataclass(frozen=True)
class JobKind:
    name: str
    # The training layer's command: python -m workers.training COMMAND SPEC.json.
    command: str
    # Fills in what only the worker knows into a copy of the job's spec (the tracking server, the
    # gateway's address for one of the project's endpoints).
    complete: Callable[[Job, dict[str, Any]], None]
    # The keys its judge or teacher chose, decrypted for this job's project, by the variable the spec
    # now names; KeyUnavailable when one cannot be had.
    keys: Callable[[Job, dict[str, Any]], dict[str, str]]
    # (role, variable) when the spec chose one of the project's endpoints, which is called through the
    # gateway with an API key made for this run only; None otherwise.
    endpoint_role: Callable[[dict[str, Any]], tuple[str, str] | None]
    # Run (in a savepoint of the transaction that marks the job succeeded) once it succeeded.
    after_success: Callable[[Job], Any] | None = None
    # The finished event's held-out verdict (better, same, worse) is the job's outcome.
    verdict: bool = False
    # Something the worker runs beside the training process, started once the job folder is its own.
    companion: Callable[[Job], Companion] | None = None


# Keys and endpoints --------------------------------------------------------------------------------------


def _secret(job: Job, ref: Any, variable: str) -> dict[str, str]:
    """A key chosen by name (a project secret or an allowed worker variable), for this job's project."""
    from apps.secrets.services import key_resolve

    value = key_resolve(project_id=job.project_id, ref=str(ref or ""))
    return {variable: value} if value else {}


def _gateway_name(job: Job, endpoint_id: Any) -> str:
    """The name the gateway knows the judge's endpoint by (one of the job's own project's, still
    deployed); KeyUnavailable, which fails the job with these words, when it is not."""
    from apps.endpoints.services import endpoint_gateway_name

    name = endpoint_gateway_name(project_id=job.project_id, endpoint_id=endpoint_id)
    if name is None:
        raise KeyUnavailable(
            f"The judge's endpoint (#{endpoint_id}) is not deployed in this project any more: deploy it again "
            "or choose another judge."
        )
    return name


def judge_endpoint_of(spec: dict[str, Any]) -> Any:
    """The id of the project endpoint a job's spec chose as its judge (RLAIF's or an evaluation's), or None."""
    return (
        (spec.get("params") or {}).get("judge_endpoint") or (spec.get("judge") or {}).get("endpoint") or None
    )


def _judge_role(spec: dict[str, Any]) -> tuple[str, str] | None:
    return ("judge", JUDGE_KEY_ENV) if judge_endpoint_of(spec) else None


# Training ------------------------------------------------------------------------------------------------


def _training_complete(job: Job, spec: dict[str, Any]) -> None:
    tracking = dict(spec.get("tracking") or {})
    tracking.setdefault("tracking_uri", settings.MLFLOW_TRACKING_URI)
    tracking.setdefault("experiment", experiment_name(job.project_id))
    tracking.setdefault("run_name", f"{job.technique}-{job.pk}")
    tracking.setdefault("register_as", f"project-{job.project_id}-job-{job.pk}")
    spec["tracking"] = tracking


def _training_keys(job: Job, spec: dict[str, Any]) -> dict[str, str]:
    """RLAIF's judge: a URL with a key of its own, or one of the project's endpoints."""
    params = spec.get("params") or {}
    params.pop("judge_api_key_env", None)  # a row from before project secrets: never honoured
    if params.get("judge_endpoint"):  # the gateway, with the key made for this run (endpoint_role)
        params.pop("judge_key", None)
        params["judge_url"], params["judge_model"] = (
            settings.GATEWAY_URL,
            _gateway_name(job, params["judge_endpoint"]),
        )
        return {}
    return _secret(job, params.get("judge_key", ""), JUDGE_KEY_ENV)


def _evaluate_after_training(job: Job) -> Any:
    from apps.evaluations.services import evaluation_after_training

    return evaluation_after_training(job)


@dataclass
class ResilientReplica:
    """The replica that the worker running a resilient job's coordinator runs itself, once the
    coordinator's lighthouse is up; it also calls free workers to join with replicas of theirs."""

    events: EventWriter
    own: ReplicaProcess | None = None

    @classmethod
    def start(cls, job: Job) -> ResilientReplica:
        from django.utils import timezone

        from apps.jobs.models import Replica
        from workers.training.events import EventWriter

        job.files.lighthouse.unlink(missing_ok=True)  # a dead coordinator's address
        Replica.objects.filter(job=job, ended_at__isnull=True).update(
            ended_at=timezone.now(), end_reason="the job started again"
        )
        # The replicas' own events (spawned, died, healed) go to the job's events file.
        return cls(EventWriter(job.files.events, to_stdout=False))

    def tick(self, job: Job) -> None:
        from apps.jobs.services import enqueue
        from workers.replicas import ReplicaProcess, replica_claim

        if self.own is None and job.files.lighthouse.exists():
            replica = replica_claim(job, job.worker)
            if replica is not None:
                self.own = ReplicaProcess(replica, self.events)
                self.own.start(job.step)
                for _ in range(int(job.resilience.get("max_replicas", 1)) - 1):
                    enqueue(job.queue)  # free workers join with replicas of theirs
        if self.own is not None:
            self.own.tick(job.step)

    def close(self) -> None:
        if self.own is not None:
            self.own.finish("the job ended")
        self.events.close()


# Evaluation ----------------------------------------------------------------------------------------------


def _evaluation_complete(job: Job, spec: dict[str, Any]) -> None:
    spec.setdefault("tracking_uri", settings.MLFLOW_TRACKING_URI)


def _evaluation_keys(job: Job, spec: dict[str, Any]) -> dict[str, str]:
    """The evaluation's judge: a URL with a key of its own, or one of the project's endpoints."""
    judge = spec.get("judge")
    if not judge:
        return {}
    judge["api_key_env"] = JUDGE_KEY_ENV  # the only variable it reads; empty without a key
    if judge.get("endpoint"):  # the gateway, with the key made for this run (endpoint_role)
        judge.pop("key", None)
        judge["base_url"], judge["model"] = settings.GATEWAY_URL, _gateway_name(job, judge["endpoint"])
        return {}
    return _secret(job, judge.get("key", ""), JUDGE_KEY_ENV)


# Data generation -----------------------------------------------------------------------------------------


def _synthesis_complete(job: Job, spec: dict[str, Any]) -> None:
    # A variable named in the row is never honoured: only the worker names one (_synthesis_keys).
    teacher = {k: v for k, v in (spec.get("teacher") or {}).items() if k != "api_key_env"}
    spec["teacher"] = teacher
    if teacher.get("endpoint"):  # one of the project's endpoints, through the gateway, with a key of its own
        from apps.endpoints.models import Endpoint

        endpoint = Endpoint.objects.filter(project_id=job.project_id, pk=teacher["endpoint"]).first()
        spec["teacher"] = {"base_url": settings.GATEWAY_URL, "model": endpoint.name if endpoint else "",
                           "api_key_env": TEACHER_KEY_ENV}  # fmt: skip
    spec["tracking"] = {"tracking_uri": settings.MLFLOW_TRACKING_URI, "experiment": experiment_name(job.project_id),
                        "run_name": f"synthetic-{job.pk}", **(spec.get("tracking") or {})}  # fmt: skip


def _synthesis_keys(job: Job, spec: dict[str, Any]) -> dict[str, str]:
    """The teacher's key: a URL's, chosen by name; none for an endpoint (the run's key) or a local model."""
    teacher = spec.get("teacher") or {}
    if teacher.get("endpoint") or teacher.get("api_key_env") == TEACHER_KEY_ENV:
        return {}  # the gateway key made for this run (endpoint_role)
    keys = _secret(job, teacher.pop("key", ""), TEACHER_KEY_ENV)
    if keys:
        teacher["api_key_env"] = TEACHER_KEY_ENV
    return keys


def _teacher_role(spec: dict[str, Any]) -> tuple[str, str] | None:
    return ("teacher", TEACHER_KEY_ENV) if (spec.get("teacher") or {}).get("endpoint") else None


def _import_generated_rows(job: Job) -> Any:
    from apps.synthetic.services import generation_after_run

    return generation_after_run(job)


# The registry --------------------------------------------------------------------------------------------

TRAINING = JobKind(
    name=Kind.TRAINING, command="run", complete=_training_complete, keys=_training_keys,
    endpoint_role=_judge_role, after_success=_evaluate_after_training, verdict=True,
)  # fmt: skip
RESILIENT_TRAINING = replace(TRAINING, command="coordinate", companion=ResilientReplica.start)
EVALUATION = JobKind(
    name=Kind.EVALUATION, command="evaluate", complete=_evaluation_complete, keys=_evaluation_keys,
    endpoint_role=_judge_role,
)  # fmt: skip
SYNTHESIS = JobKind(
    name=Kind.SYNTHESIS, command="synthesize", complete=_synthesis_complete, keys=_synthesis_keys,
    endpoint_role=_teacher_role, after_success=_import_generated_rows,
)  # fmt: skip
KINDS: dict[str, JobKind] = {kind.name: kind for kind in (TRAINING, EVALUATION, SYNTHESIS)}


def kind_of(job: Job) -> JobKind:
    """What runs `job`: its kind's entry, or the resilient one for a training job with `resilience`."""
    if job.kind == Kind.TRAINING and job.resilience:
        return RESILIENT_TRAINING
    return KINDS[job.kind]
