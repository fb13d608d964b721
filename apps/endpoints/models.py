"""Endpoints: a deployed model that applications call through the OpenAI-compatible gateway (/v1/).

An Endpoint is what a person deploys (a job's model, or a base model) and names in the `model` field of a
request. An Engine is the process that serves it: one per base model and engine kind, shared by every
endpoint on that base (each adapter is loaded into the same process and chosen per request). The engine
supervisor (workers/engines.py) reconciles these rows into processes and writes back what it
sees; the gateway reads them to route requests. API keys belong to a project and are stored hashed.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.projects.models import Project


class EngineKind(models.TextChoices):
    BUILTIN = "builtin", "Built-in (transformers + PEFT)"
    VLLM = "vllm", "vLLM"


class EngineStatus(models.TextChoices):
    STARTING = "starting", "Starting"
    LOADING = "loading", "Loading"
    READY = "ready", "Ready"
    IDLE = "idle", "Idle at zero"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


class Engine(models.Model):
    kind = models.CharField(max_length=10, choices=EngineKind.choices, default=EngineKind.BUILTIN)
    base = models.CharField(max_length=500)  # a local folder or a Hugging Face id
    status = models.CharField(max_length=10, choices=EngineStatus.choices, default=EngineStatus.STARTING)
    message = models.TextField(blank=True)
    host = models.CharField(max_length=200, default="127.0.0.1")
    port = models.PositiveIntegerField(null=True, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    # The largest LoRA rank among its adapters: vLLM must be told at start, and restarts for a larger one.
    max_lora_rank = models.PositiveIntegerField(default=16)
    restarts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    # The gateway asks an engine at zero to come back by setting this; the supervisor starts it.
    wake_requested_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    memory_bytes = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint("kind", "base", name="engine_unique_per_kind_and_base")]

    def __str__(self) -> str:
        return f"{self.kind} engine for {self.base} ({self.status})"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class EndpointStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    LOADING = "loading", "Loading"
    READY = "ready", "Ready"
    IDLE = "idle", "Idle at zero"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


LIVE = (EndpointStatus.PENDING, EndpointStatus.LOADING, EndpointStatus.READY, EndpointStatus.IDLE)


class Endpoint(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="endpoints")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # What requests put in `model`: unique in the project, so the API key's project decides the endpoint.
    name = models.SlugField(max_length=100)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="endpoints"
    )
    label = models.CharField(max_length=300, blank=True)  # what people read for the model
    base = models.CharField(max_length=500)
    adapter = models.CharField(max_length=500, blank=True)  # a LoRA adapter folder on that base
    engine_kind = models.CharField(max_length=10, choices=EngineKind.choices, default=EngineKind.BUILTIN)
    engine = models.ForeignKey(
        Engine, null=True, blank=True, on_delete=models.SET_NULL, related_name="endpoints"
    )
    active = models.BooleanField(default=True)  # deployed; False once undeployed
    status = models.CharField(max_length=10, choices=EndpointStatus.choices, default=EndpointStatus.PENDING)
    message = models.TextField(blank=True)
    # Seconds without requests before its engine is stopped to free memory (0: never).
    idle_seconds = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    last_request_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint("project", "name", name="endpoint_name_unique_per_project")]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def served_name(self) -> str:
        """The name its engine knows it by: the base model, or its adapter (one per endpoint)."""
        return f"adapter-{self.pk}" if self.adapter else "base"


class ApiKey(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)  # the first characters, to tell keys apart on the page
    digest = models.CharField(max_length=64, unique=True)  # SHA-256 of the key; the key itself is never kept
    rate_limit = models.PositiveIntegerField(default=0)  # requests a minute; 0: the server's default
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
