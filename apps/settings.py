"""Django settings: one module, driven by the environment (see README, "Settings").

Defaults are safe for one person on one machine: SQLite (WAL) and the embedded Redis and MLflow in the
data folder, DEBUG off, only loopback hosts allowed.
"""

from __future__ import annotations

import os
import warnings
from datetime import timedelta
from typing import Any

import dj_database_url

from apps import env

BASE_DIR = env.BASE_DIR
DATA_DIR = env.data_dir()

SECRET_KEY = env.secret_key()
DEBUG = env.env_bool("DEBUG", False)
ALLOWED_HOSTS = env.env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",
    "django_htmx",
    "template_partials",
    "apps.core",
    "apps.accounts",
    "apps.projects",
    "apps.jobs",
    "apps.datasets",
    "apps.evaluations",
    "apps.endpoints",
    "apps.synthetic",
    "axes",  # login throttling: failed attempts by username and address, lockouts, the admin's view of both
    "apps.secrets",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "apps.core.middleware.JsonApiMiddleware",
    "apps.core.middleware.ContentSecurityPolicyMiddleware",
    "apps.core.middleware.AxesMiddleware",  # axes's, synchronous; last: it turns a locked-out login into the lockout page
]
# axes looks for its middleware by name; the one above is a subclass of it.
SILENCED_SYSTEM_CHECKS = ["axes.W002"]

# Sent on every response that has no policy of its own (apps/core/middleware.py). Scripts come only from
# our static files: no inline <script>, no on...= handlers, no javascript: links, no eval (htmx's
# hx-on and js: values are not used, and htmx.config.allowEval is off). Inline style attributes are
# allowed: they carry no script, and htmx adds its indicator style that way.
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

ROOT_URLCONF = "apps.urls"
FORM_RENDERER = "apps.core.forms.FormRenderer"
ASGI_APPLICATION = "apps.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.projects.context_processors.projects",
            ],
        },
    }
]


def _database() -> dict[str, Any]:
    config: dict[str, Any] = dict(dj_database_url.parse(env.database_url(), conn_max_age=0))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the web server read while a worker writes; IMMEDIATE transactions take the write lock
        # up front, so concurrent writers wait (timeout) instead of failing with "database is locked".
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
        # Tests run a real Celery worker in another process: it must see the same test database, which
        # an in-memory SQLite database cannot offer.
        config["TEST"] = {"NAME": str(DATA_DIR / "test-atelier.sqlite3")}
        if env.env_bool("ATELIER_DB_POOL"):
            # The web processes: a request runs in one of a few long-lived threads (apps/asgi.py), whose
            # connection stays open instead of being opened (the schema read again) for every request.
            config["CONN_MAX_AGE"] = None
    elif config["ENGINE"] == "django.db.backends.postgresql" and env.env_bool("ATELIER_DB_POOL"):
        # The web processes (`python -m apps.launcher web` sets ATELIER_DB_POOL). Under ASGI a request's
        # thread may be one made for it alone (apps/asgi.py, when the long-lived ones are all busy), where
        # a persistent connection would be left behind; Django's documentation says to use the backend's
        # pool instead.
        # psycopg's pool keeps connections open across requests; Django has it check each one before
        # lending it (ConnectionPool.check_connection), so a connection the server dropped is replaced.
        # A new connection a request (PostgreSQL forks a backend for each) had halved the pages'
        # throughput (bench/web.py).
        config["OPTIONS"] = {
            **config.get("OPTIONS", {}),
            "pool": {"min_size": 2, "max_size": env.db_pool_size(), "timeout": 20},
        }
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {"default": _database()}

# Rendered fragments kept under what they show (apps/core/fragments.py), in each web process's memory:
# nothing to share or invalidate, since a fragment whose data changed gets another key. A fragment is a
# few KB; 2,000 bound a process's share to some 10 MB.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "OPTIONS": {"MAX_ENTRIES": 2000}}
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# django-axes counts failed logins per username and client address together (so a stranger cannot lock
# someone out from elsewhere) and refuses that pair, right password or not, until the cool-off ends.
# Its backend goes first: it refuses a locked-out pair before the password is even checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.env_int("ATELIER_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env.env_int("ATELIER_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a success forgets that pair's earlier failures
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the cool-off ends when the page says it does
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# The pages are in English only. With translation on, every {% url %}, form and date asks asgiref's
# Local for the active language under a lock that 20 concurrent requests' threads queue on: 15% of the
# web process's time under load (bench/web.py).
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns about a missing one on every start
# WhiteNoise's file responses iterate synchronously; under ASGI Django warns about that on every static
# file. Our static files are small and served from a thread: the warning says nothing actionable.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")
# Serve straight from static/ as well, so a checkout works without `collectstatic` (tests, first run).
WHITENOISE_USE_FINDERS = True

# The embedded services (or the real ones at these URLs).
REDIS_URL = env.redis_url()
MLFLOW_TRACKING_URI = env.mlflow_tracking_uri()
# Who the app's /mlflow/ proxy and the workers are to the tracking server (apps/env.py). MLflow's client
# reads only these two environment variables, so they are put there for this process and what it starts:
# the workers' training subprocesses log with them. Users never see them: they go through the proxy.
MLFLOW_CREDENTIALS = env.mlflow_credentials()
if MLFLOW_CREDENTIALS:
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = MLFLOW_CREDENTIALS

# Celery reads every CELERY_* setting (workers/celery.py).
CELERY_BROKER_URL = REDIS_URL.replace("unix://", "redis+socket://", 1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Training tasks name their queue when sent (one per compute class, settings.JOB_QUEUES); the rest is
# housekeeping on `default`.
CELERY_TASK_ROUTES = {"workers.tasks.*": {"queue": "default"}}
# Training tasks are long: a worker takes one task at a time, and the job row, not the broker, says what
# must be retried (DESIGN.md, "Reliability rules of thumb").
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A busy training worker takes no further message from Redis: with early acks, a message it held while
# busy would be lost if it died; left in Redis, the next free worker takes it.
CELERY_WORKER_DISABLE_PREFETCH = True
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "beat-heartbeat": {
        "task": "workers.tasks.beat_heartbeat",
        "schedule": env.env_float("ATELIER_HEARTBEAT_SECONDS", 15),
    },
    "jobs-reap": {
        "task": "workers.tasks.jobs_reap",
        "schedule": env.env_float("ATELIER_REAPER_SECONDS", 15),
    },
}

# Jobs. A running job's worker renews its lease every second or so; a job whose lease ran out (its worker
# died) is queued again by the reaper and resumes from its newest complete checkpoint. Cancelling writes a
# flag the trainer checks between steps, then SIGTERM after the grace period, then SIGKILL after another.
JOB_LEASE_SECONDS = env.env_float("ATELIER_JOB_LEASE_SECONDS", 60)
JOB_CANCEL_GRACE_SECONDS = env.env_float("ATELIER_CANCEL_GRACE_SECONDS", 30)
# A job that waited this long takes a worker from a resilient job above its minimum of replicas (one
# replica leaves at a step boundary; the resilient job grows again when a worker is free).
JOB_PREEMPT_AFTER_SECONDS = env.env_float("ATELIER_PREEMPT_AFTER_SECONDS", 20)
# Folders people may choose models from by path (ATELIER_MODEL_DIRS); the data folder never counts.
MODEL_DIRS = env.model_dirs()

# Uploads: streamed to disk, stopped at this size (ATELIER_DATASET_MAX_MB).
DATASET_MAX_BYTES = int(env.env_float("ATELIER_DATASET_MAX_MB", 200) * 1024**2)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # bigger uploads go to a temporary file, never to memory
# Compute classes (workers.training.estimate) and the queue whose workers can run each.
JOB_QUEUES = {
    "cpu": "train-cpu",
    "gpu-24g": "train-gpu-24g",
    "gpu-80g": "train-gpu-80g",
    "multi-gpu": "train-multi-gpu",
}
# Serving (apps/endpoints, workers/serving). The engine new endpoints get: "builtin" (transformers + PEFT,
# CPU and small GPUs) or "vllm" (installed on the GPU host). Engines listen on ENGINE_BIND; the gateway
# reaches them at ENGINE_HOST (another machine's address when the supervisor runs there).
ENGINE_KIND = os.environ.get("ATELIER_ENGINE", "builtin")
ENGINE_BIND = os.environ.get("ATELIER_ENGINE_BIND", "127.0.0.1")
ENGINE_HOST = os.environ.get("ATELIER_ENGINE_HOST", "127.0.0.1")
# Scale to zero: an engine is stopped after this long without requests (0: never), per endpoint.
ENGINE_IDLE_SECONDS = env.env_int("ATELIER_ENGINE_IDLE_SECONDS", 900)
# How long a request waits for an engine to (re)start before it gets a 503.
ENGINE_WAKE_TIMEOUT_SECONDS = env.env_float("ATELIER_ENGINE_WAKE_TIMEOUT_SECONDS", 300)
ENGINE_START_TIMEOUT_SECONDS = env.env_float("ATELIER_ENGINE_START_TIMEOUT_SECONDS", 900)
# Where workers reach the gateway (a project's endpoint as the teacher of a data generation).
GATEWAY_URL = os.environ.get("ATELIER_GATEWAY_URL", f"http://{env.web_host()}:{env.web_port()}/v1")
# Where judges, teachers and the teacher check may connect besides public addresses (workers.training.
# outbound): CIDRs or host:port, comma-separated. The gateway above is always allowed; link-local,
# metadata, multicast and reserved addresses never are.
OUTBOUND_ALLOW = os.environ.get("ATELIER_OUTBOUND_ALLOW", "")
# Workers' environment variables that jobs may choose as a judge's or teacher's key (comma-separated
# names); project secrets need none of this.
WORKER_SECRET_ENV = [
    n.strip() for n in os.environ.get("ATELIER_WORKER_SECRET_ENV", "").split(",") if n.strip()
]
# How long a form waits for a worker to check a teacher's URL.
PROBE_TIMEOUT_SECONDS = env.env_float("ATELIER_PROBE_TIMEOUT_SECONDS", 20)
# Requests a minute per API key unless the key says otherwise.
GATEWAY_RATE_LIMIT = env.env_int("ATELIER_RATE_LIMIT_PER_MINUTE", 600)
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SECURE = env.env_bool("SESSION_COOKIE_SECURE", False)
    CSRF_COOKIE_SECURE = env.env_bool("CSRF_COOKIE_SECURE", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
CSRF_FAILURE_VIEW = "apps.core.views.csrf_failure"
