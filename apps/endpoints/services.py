"""Writes on endpoints and API keys. Deploying writes rows only; the engine supervisor starts what the
rows ask for, so the web request returns at once and a dead engine is the supervisor's to restart."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import slugify

from apps.endpoints.models import ApiKey, Endpoint, EndpointStatus, Engine, EngineKind, EngineStatus
from apps.jobs.models import Job, Status
from apps.projects.models import Project
from apps.projects.services import membership_require_editor
from workers.serving import vllm
from workers.training.models import ModelError, resolve
from workers.training.spec import ModelRef

KEY_PREFIX = "atl-"


def _require_editor(*, project: Project, actor: User) -> None:
    membership_require_editor(
        project=project, actor=actor, message="Viewers can look but not deploy, stop or create keys."
    )


def _unique_name(project: Project, wanted: str) -> str:
    base = (slugify(wanted) or "model")[:80]
    name, n = base, 2
    while Endpoint.objects.filter(project=project, name=name).exists():
        name, n = f"{base}-{n}", n + 1
    return name


def _where(model: str) -> tuple[str, str]:
    """(base, adapter folder or "") of a model folder, an adapter folder or a hub id."""
    try:
        found = resolve(ModelRef(model))
    except ModelError as exc:
        raise ValidationError(str(exc)) from exc
    # Absolute folders, so that one base reached by two spellings is still one engine.
    base = str(Path(found["base"]).resolve()) if found["local"] else found["base"]
    adapter = str(Path(found["adapter"]).resolve()) if found["adapter"] else ""
    return base, adapter


def _attach(endpoint: Endpoint) -> None:
    """Give the endpoint its engine: the one already serving its base, or a new one."""
    engine, _ = Engine.objects.get_or_create(kind=endpoint.engine_kind, base=endpoint.base)
    if engine.status in (EngineStatus.FAILED, EngineStatus.STOPPED):
        engine.status, engine.message = EngineStatus.STARTING, ""
    if engine.status == EngineStatus.IDLE:
        engine.wake_requested_at = timezone.now()
    if endpoint.adapter:
        engine.max_lora_rank = max(
            engine.max_lora_rank, vllm.max_lora_rank([vllm.lora_rank(endpoint.adapter)])
        )
    engine.save()
    endpoint.engine = engine


@transaction.atomic
def endpoint_deploy(
    *,
    project: Project,
    user: User,
    job: Job | None = None,
    model: str = "",
    name: str = "",
    label: str = "",
    engine_kind: str = "",
    idle_seconds: int | None = None,
    confirm_worse: bool = False,
) -> Endpoint:
    """Deploy a job's model (its adapter on its base, or its full model) or a base model. One click: a
    job that already has a live endpoint gets that one back. A job that ended worse than its base is
    deployed only when the person confirms it (confirm_worse)."""
    _require_editor(project=project, actor=user)
    if job is not None:
        if job.project_id != project.pk:
            raise PermissionDenied("That job is in another project.")
        existing = Endpoint.objects.filter(project=project, job=job, active=True).first()
        if existing is not None:
            return existing
        if job.status != Status.SUCCEEDED or not job.is_training or not job.model_artifact:
            raise ValidationError("Only a training job that succeeded has a model to deploy.")
        if job.worse and not confirm_worse:
            raise ValidationError(
                "This model scored worse than its base on the held-out rows"
                + (f" ({job.outcome_reason.rstrip('.')})" if job.outcome_reason else "")
                + ". Tick “Deploy anyway” to deploy it all the same."
            )
        if not Path(job.model_artifact).exists():
            raise ValidationError(f"The model this job saved is no longer on disk ({job.model_artifact}).")
        model = job.model_artifact
        label = label or f"{job.name} (job #{job.pk})"
        name = name or f"{job.name}-{job.pk}"
    if not model.strip():
        raise ValidationError("Choose a model to deploy.")
    base, adapter = _where(model.strip())
    kind = engine_kind or settings.ENGINE_KIND
    if kind not in EngineKind.values:
        raise ValidationError(f"There is no engine “{kind}”; the engines are {', '.join(EngineKind.values)}.")
    endpoint = Endpoint(
        project=project, created_by=user, job=job, label=label or model.strip(), base=base, adapter=adapter,
        name=_unique_name(project, name or Path(model.strip()).name), engine_kind=kind,
        idle_seconds=settings.ENGINE_IDLE_SECONDS if idle_seconds is None else idle_seconds,
    )  # fmt: skip
    _attach(endpoint)
    endpoint.save()
    return endpoint


@transaction.atomic
def endpoint_deploy_builtin(*, project: Project, user: User, variant: str) -> Endpoint:
    """Deploy the built-in judge or teacher (or another built-in variant) as it is, one click: the
    project's endpoint already serving it comes back, an undeployed one is deployed again (same name,
    same usage), and only otherwise is a new one made. The project's row is locked first, so two clicks
    at once still make one endpoint."""
    from apps.endpoints.selectors import builtin_endpoint
    from apps.jobs import wizard

    _require_editor(project=project, actor=user)
    Project.objects.select_for_update().filter(pk=project.pk).first()
    existing = builtin_endpoint(project.pk, variant)
    if existing is not None:
        return existing
    chosen = wizard.model_choose(project=project, user=user, source=f"{wizard.BUILTIN}/{variant}")
    folder = str(Path(chosen["model"]).resolve())
    stopped = Endpoint.objects.filter(project=project, active=False, base=folder, adapter="").first()
    if stopped is not None:
        return endpoint_redeploy(endpoint=stopped, user=user)
    return endpoint_deploy(project=project, user=user, model=chosen["model"], label=chosen["label"],
                           name=f"{wizard.BUILTIN}-{variant}")  # fmt: skip


@transaction.atomic
def endpoint_undeploy(*, endpoint: Endpoint, user: User) -> Endpoint:
    """Stop serving it; its engine stops once no endpoint uses it. The row stays, with its usage."""
    _require_editor(project=endpoint.project, actor=user)
    Endpoint.objects.filter(pk=endpoint.pk).update(
        active=False, status=EndpointStatus.STOPPED, message="Undeployed.", engine=None
    )
    endpoint.refresh_from_db()
    return endpoint


@transaction.atomic
def endpoint_redeploy(*, endpoint: Endpoint, user: User) -> Endpoint:
    """Serve it again (after undeploying, or after its engine failed): same name, same usage counters."""
    _require_editor(project=endpoint.project, actor=user)
    endpoint.active, endpoint.status, endpoint.message = True, EndpointStatus.PENDING, ""
    _attach(endpoint)
    endpoint.save()
    return endpoint


def endpoint_wake(*, endpoint: Endpoint) -> None:
    """Ask the supervisor to start the endpoint's engine again (it was stopped when idle)."""
    if endpoint.engine_id is None:
        return
    Engine.objects.filter(pk=endpoint.engine_id, status=EngineStatus.IDLE).update(
        wake_requested_at=timezone.now()
    )


def endpoint_record_usage(
    *, endpoint_id: int, prompt_tokens: int = 0, completion_tokens: int = 0, error: bool = False
) -> None:
    Endpoint.objects.filter(pk=endpoint_id).update(
        requests=F("requests") + 1,
        errors=F("errors") + int(error),
        prompt_tokens=F("prompt_tokens") + prompt_tokens,
        completion_tokens=F("completion_tokens") + completion_tokens,
        last_request_at=timezone.now(),
    )


# API keys ------------------------------------------------------------------------------------------------


def key_digest(key: str) -> str:
    """Keys are long random strings, so one SHA-256 is enough (no salt or slow hash needed: nothing to
    guess); the database never holds a usable key."""
    return hashlib.sha256(key.encode()).hexdigest()


# A key made for one run (a judge's or a teacher's): an RLAIF judge is asked for every completion, a
# batch of 32 at a time, many times a minute on a GPU; the server's default limit (600 a minute) would
# turn most of its judgements into 429s. The run's key lives only as long as the run.
RUN_KEY_RATE_LIMIT = 100_000


def api_key_create(*, project: Project, user: User, name: str, rate_limit: int = 0) -> tuple[ApiKey, str]:
    """A new key; the key itself is returned once and never stored."""
    _require_editor(project=project, actor=user)
    if not name.strip():
        raise ValidationError(
            "Give the key a name, to tell it apart later (for example the app that uses it)."
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        project=project, created_by=user, name=name.strip()[:100], prefix=key[:10], digest=key_digest(key),
        rate_limit=rate_limit,
    )  # fmt: skip
    return api_key, key


def api_key_revoke(*, api_key: ApiKey, user: User) -> None:
    _require_editor(project=api_key.project, actor=user)
    run_key_revoke(api_key=api_key)


def run_key_create(*, project: Project, user: User, role: str, run: str) -> tuple[ApiKey, str]:
    """A key for one run whose judge or teacher is one of the project's endpoints (through the gateway),
    made as the person who started it; revoked by `run_key_revoke` when the run ends."""
    return api_key_create(project=project, user=user, name=f"{role} for {run}", rate_limit=RUN_KEY_RATE_LIMIT)


def endpoint_gateway_name(*, project_id: int, endpoint_id: Any) -> str | None:
    """The name the gateway knows one of the project's deployed endpoints by; None when `endpoint_id` is
    none of them (another project's, undeployed, or not an id)."""
    ref = str(endpoint_id)
    if not ref.isdigit():
        return None
    return (
        Endpoint.objects.filter(project_id=project_id, pk=int(ref), active=True)
        .values_list("name", flat=True)
        .first()
    )


def run_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke a key that a run was given (no person's permission is asked: its maker may have become a
    viewer while the run went on, and taking a key away is always safe)."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at=None).update(revoked_at=timezone.now())
