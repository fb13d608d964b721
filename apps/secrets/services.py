"""Writes and the one read of a secret's value. Values are encrypted before they reach the database and
decrypted only by the worker's runner, for a job of the secret's own project (`key_resolve`)."""

from __future__ import annotations

import os
import re

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.projects.models import Project
from apps.projects.services import membership_require_editor
from apps.secrets import crypto
from apps.secrets.models import SECRET_NAME_MAX_LENGTH, ProjectSecret
from workers.training import outbound
from workers.training.keys import KEY_ENVS

NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{SECRET_NAME_MAX_LENGTH - 1}}}")
MAX_VALUE_LENGTH = 4096
SECRET_PREFIX, ENV_PREFIX = "secret:", "env:"


class KeyUnavailable(ValueError):
    """A job's key cannot be had: the message says why, for the job's page."""


def _require_editor(*, project: Project, actor: User) -> None:
    membership_require_editor(
        project=project, actor=actor, message="Viewers can look but not change the project's secrets."
    )


@transaction.atomic
def secret_save(*, project: Project, user: User, name: str, value: str) -> ProjectSecret:
    """Save `value` under `name`, encrypted; a name saved again gets the new value (a rotated key)."""
    _require_editor(project=project, actor=user)
    name = (name or "").strip()
    if not NAME.fullmatch(name):
        raise ValidationError(
            {
                "name": f"A name of 1 to {SECRET_NAME_MAX_LENGTH} letters, digits, “_”, “.” or “-”, e.g. openai."
            }
        )
    value = (value or "").strip()
    if not value:
        raise ValidationError({"value": "Paste the key itself."})
    if len(value) > MAX_VALUE_LENGTH:
        raise ValidationError({"value": f"A key of at most {MAX_VALUE_LENGTH:,} characters."})
    secret, _ = ProjectSecret.objects.update_or_create(
        project=project, name=name,
        defaults={"ciphertext": crypto.encrypt(value), "created_by": user, "created_at": timezone.now(),
                  "last_used_at": None},
    )  # fmt: skip
    return secret


def judge_key_save(*, project: Project, user: User, url: str, value: str) -> str:
    """A URL judge's key typed on a form: saved once, encrypted, as the project secret named after the
    judge's host (a key saved again for the same host replaces it); the reference the spec keeps."""
    from urllib.parse import urlsplit

    host = re.sub(r"[^A-Za-z0-9_.-]+", "-", urlsplit(url.strip()).hostname or "")
    if not host:
        raise ValidationError({"judge_new_key": "A typed key is for a judge at a URL: give its URL too."})
    name = f"judge-{host}"[:SECRET_NAME_MAX_LENGTH]
    try:
        secret_save(project=project, user=user, name=name, value=value)
    except ValidationError as exc:
        raise ValidationError({"judge_new_key": exc.messages}) from exc
    return f"{SECRET_PREFIX}{name}"


def secret_delete(*, secret: ProjectSecret, user: User) -> None:
    _require_editor(project=secret.project, actor=user)
    secret.delete()


def worker_env_names() -> list[str]:
    """The workers' environment variables an administrator offers as keys (ATELIER_WORKER_SECRET_ENV)."""
    return list(settings.WORKER_SECRET_ENV)


def key_choices(*, project: Project) -> list[tuple[str, str]]:
    """What a judge's or teacher's key can be: none, one of the project's secrets, or an allowed
    variable of the workers' environment. The stored choice is a reference, never a key."""
    choices = [("", "No key")]
    choices += [
        (f"{SECRET_PREFIX}{s.name}", f"{s.name} (project secret)")
        for s in ProjectSecret.objects.filter(project=project)
    ]
    choices += [(f"{ENV_PREFIX}{n}", f"{n} (the workers' environment)") for n in worker_env_names()]
    return choices


def key_resolve(*, project_id: int, ref: str) -> str | None:
    """The key `ref` names, for a job of project `project_id`; None for no key. Only the runner calls
    this, in the worker, to put the key into one training process's environment."""
    if not ref:
        return None
    if ref.startswith(SECRET_PREFIX):
        name = ref.removeprefix(SECRET_PREFIX)
        secret = ProjectSecret.objects.filter(project_id=project_id, name=name).first()
        if secret is None:
            raise KeyUnavailable(
                f"The project has no secret named “{name}” (deleted?): save it again in Settings."
            )
        try:
            value = crypto.decrypt(secret.ciphertext)
        except crypto.SecretUnreadable as exc:
            raise KeyUnavailable(f"The secret “{name}”: {exc}") from exc
        ProjectSecret.objects.filter(pk=secret.pk).update(last_used_at=timezone.now())
        return value
    if ref.startswith(ENV_PREFIX):
        name = ref.removeprefix(ENV_PREFIX)
        if name not in worker_env_names():
            raise KeyUnavailable(
                f"{name} is not among the workers' variables an administrator offers (ATELIER_WORKER_SECRET_ENV)."
            )
        found = os.environ.get(name)
        if not found:
            raise KeyUnavailable(f"{name} is not set on this worker.")
        return found
    raise KeyUnavailable("The key must be one of the project's secrets or an offered variable.")


def training_process_env(keys: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process of the training layer (a job's trainer, the wizard's Try): this
    process's, without any key variable it may have itself (a job gets a key only from its own
    project's secret, in `keys`), and with the outbound policy its judge and teacher connect under."""
    from apps.secrets.outbound import policy

    env = {k: v for k, v in os.environ.items() if k not in KEY_ENVS}
    env[outbound.ALLOW_ENV] = policy().as_text()
    env.pop(outbound.GATEWAY_ENV, None)  # the policy above already holds the gateway
    return {**env, **(keys or {})}
