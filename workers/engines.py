"""The engine supervisor: reconciles Endpoint rows into engine processes, once a second.

For every Engine row with a deployed endpoint it keeps one process running (the built-in engine, or vLLM),
health-checks it, loads each endpoint's adapter into it, restarts it when it dies, stops it after its
endpoints' idle time (scale to zero) and starts it again when the gateway asks. An engine that fails to
start three times running is marked failed with the reason from its log, and stays so until redeployed.
It writes what it sees back into the rows (status, message, port, pid, memory); the gateway and the
pages read them. Engines are its children and die with it (workers.processes: PR_SET_PDEATHSIG, and the
built-in engine watches its parent), so a restarted supervisor starts from a clean slate.

The Django side of serving, as workers/runner.py is of training: the engines themselves and the wire
format they speak (workers/serving/) never import Django. Django is set up in main(), after this module
is imported, so the models are imported inside the methods.

    python -m workers.engines [POLL_SECONDS]     (`make run` starts it)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from workers.processes import die_with_parent

log = logging.getLogger("atelier.engines")
MAX_FAILED_STARTS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(url: str, body: dict[str, Any] | None = None, timeout: float = 2.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})  # noqa: S310 - our engine's http:// URL
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        text = response.read().decode()
    try:
        return json.loads(text)
    except ValueError:
        return text


def _error_of(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        with contextlib.suppress(Exception):
            return str(json.loads(exc.read())["error"]["message"])
    return str(exc)


class Supervisor:
    def __init__(self, poll: float = 1.0) -> None:
        from django.conf import settings

        self.poll = poll
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.failures: dict[int, int] = {}
        self.ranks: dict[int, int] = {}  # the LoRA rank each vLLM engine was started with
        self.logs = Path(settings.DATA_DIR) / "engines"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.stop = threading.Event()

    # The loop ---------------------------------------------------------------------------------------------

    def run(self) -> None:
        from django.db import close_old_connections

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stop.set())
        self._forget_old_processes()
        log.info("engine supervisor running (pid %s)", os.getpid())
        try:
            while not self.stop.is_set():
                try:
                    self.reconcile()
                except Exception:
                    log.exception("reconcile failed; trying again")
                    close_old_connections()
                self.stop.wait(self.poll)
        finally:
            for pk in list(self.procs):
                self._kill(pk)

    def _forget_old_processes(self) -> None:
        """Rows written by an earlier supervisor describe processes that died with it."""
        from apps.endpoints.models import Engine, EngineStatus

        Engine.objects.exclude(status__in=(EngineStatus.FAILED, EngineStatus.IDLE)).update(
            status=EngineStatus.STARTING, pid=None, port=None
        )

    def reconcile(self) -> None:
        from apps.core.selectors import ENGINES_KEY, redis_client
        from apps.endpoints.models import Endpoint, Engine

        with contextlib.suppress(Exception):  # the health page's heartbeat; serving goes on without Redis
            redis_client().set(ENGINES_KEY, time.time())

        seen = set()
        for engine in Engine.objects.all():
            seen.add(engine.pk)
            wanted = list(Endpoint.objects.filter(engine=engine, active=True))
            if not wanted:
                self._kill(engine.pk)
                engine.delete()
                log.info("engine %s for %s stopped: no endpoint uses it", engine.pk, engine.base)
                continue
            self._tend(engine, wanted)
        for pk in set(self.procs) - seen:  # its row is gone (deleted by hand, or a test's clean-up)
            self._kill(pk)

    # One engine -------------------------------------------------------------------------------------------

    def _tend(self, engine: Any, wanted: list[Any]) -> None:
        from django.utils import timezone

        from apps.endpoints.models import EngineStatus

        proc = self.procs.get(engine.pk)
        if proc is not None and proc.poll() is not None:
            code = proc.returncode
            self.procs.pop(engine.pk)
            proc = None
            if engine.status == EngineStatus.READY:
                log.warning("engine %s (%s) died with code %s; restarting it", engine.pk, engine.base, code)
                self._save(engine, status=EngineStatus.STARTING, restarts=engine.restarts + 1, pid=None,
                           message=f"The engine stopped unexpectedly (exit code {code}) and was restarted.")  # fmt: skip
            elif engine.status in (EngineStatus.STARTING, EngineStatus.LOADING):
                self.failures[engine.pk] = self.failures.get(engine.pk, 0) + 1
                reason = self._failure_reason(engine.pk)
                if self.failures[engine.pk] >= MAX_FAILED_STARTS:
                    log.error("engine %s for %s failed to start: %s", engine.pk, engine.base, reason)
                    self._save(engine, status=EngineStatus.FAILED, pid=None, message=reason)
                    self._endpoints(wanted, "failed", reason)
                    return
        if engine.status == EngineStatus.FAILED:
            self._endpoints(wanted, "failed", engine.message)
            return
        if proc is None and self.failures.get(engine.pk, 0) >= MAX_FAILED_STARTS:
            self.failures.pop(engine.pk)  # it was failed and someone redeployed it: a fresh set of tries
        if engine.status == EngineStatus.STOPPED:
            return
        if engine.status == EngineStatus.IDLE and not engine.wake_requested_at:
            self._endpoints(wanted, "idle", engine.message)
            return
        if proc is None:
            self._start(engine, wanted)
            return
        if engine.pk in self.ranks and engine.max_lora_rank > self.ranks[engine.pk]:
            # vLLM fixes the largest adapter rank at start: an adapter of a larger rank needs a restart.
            log.info("engine %s restarts for LoRA rank %s", engine.pk, engine.max_lora_rank)
            self._kill(engine.pk)
            self._start(engine, wanted)
            return
        try:
            health = _http(f"{engine.url}/health", timeout=2.0)
        except (OSError, ValueError):
            started = engine.started_at or timezone.now()
            if timezone.now() - started > timedelta(seconds=_setting("ENGINE_START_TIMEOUT_SECONDS")):
                self._kill(engine.pk)
                reason = f"The engine did not answer within {_setting('ENGINE_START_TIMEOUT_SECONDS'):.0f} s of starting."
                self.failures[engine.pk] = MAX_FAILED_STARTS
                self._save(engine, status=EngineStatus.FAILED, pid=None, message=reason)
                self._endpoints(wanted, "failed", reason)
            return
        now = timezone.now()
        if engine.status != EngineStatus.READY:
            self.failures.pop(engine.pk, None)
            log.info("engine %s for %s is ready on port %s", engine.pk, engine.base, engine.port)
            self._save(engine, status=EngineStatus.READY, ready_at=now,
                       message="" if not engine.restarts else engine.message)  # fmt: skip
        memory = health.get("memory_bytes") if isinstance(health, dict) else None
        self._save(engine, checked_at=now, memory_bytes=memory)
        self._adapters(engine, wanted)
        self._scale_to_zero(engine, wanted, health if isinstance(health, dict) else {})

    def _adapters(self, engine: Any, wanted: list[Any]) -> None:
        """Load every endpoint's adapter into the engine and unload the ones no endpoint uses."""
        from workers.serving import vllm

        try:
            loaded = {m["id"] for m in _http(f"{engine.url}/v1/models")["data"]}
        except (OSError, ValueError, KeyError, TypeError):
            return
        for endpoint in wanted:
            if endpoint.adapter and endpoint.served_name not in loaded:
                path, body = vllm.load_adapter_request(endpoint.served_name, endpoint.adapter)
                try:
                    _http(engine.url + path, body, timeout=120)
                except (OSError, ValueError) as exc:
                    self._endpoints(
                        [endpoint], "failed", f"Its adapter could not be loaded: {_error_of(exc)}"
                    )
                    continue
                loaded.add(endpoint.served_name)
            if endpoint.served_name in loaded:
                self._endpoints([endpoint], "ready", "")
        names = {e.served_name for e in wanted}
        for name in loaded - names - {"base"}:
            path, body = vllm.unload_adapter_request(name)
            with contextlib.suppress(OSError, ValueError):
                _http(engine.url + path, body, timeout=30)

    def _scale_to_zero(self, engine: Any, wanted: list[Any], health: dict[str, Any]) -> None:
        """Stop the engine when every endpoint on it allows it and none was asked anything for that long."""
        from django.utils import timezone

        from apps.endpoints.models import EngineStatus

        limits = [e.idle_seconds for e in wanted]
        if not limits or min(limits) <= 0 or health.get("in_flight", 0):
            return
        moments = [engine.ready_at, *(e.last_request_at for e in wanted)]
        last = max(m for m in moments if m is not None)
        if health.get("last_request_at"):
            last = max(last, datetime.fromtimestamp(health["last_request_at"], tz=UTC))
        if timezone.now() - last < timedelta(seconds=max(limits)):
            return
        self._kill(engine.pk)
        message = f"Stopped after {max(limits)} s without requests to free its memory; the next request starts it again."
        log.info("engine %s for %s scaled to zero", engine.pk, engine.base)
        self._save(engine, status=EngineStatus.IDLE, pid=None, port=None, memory_bytes=None, message=message,
                   wake_requested_at=None)  # fmt: skip
        self._endpoints(wanted, "idle", message)

    # Processes --------------------------------------------------------------------------------------------

    def _start(self, engine: Any, wanted: list[Any]) -> None:
        from django.utils import timezone

        from apps.endpoints.models import EngineKind, EngineStatus
        from workers.serving import vllm

        port = _free_port()
        bind = _setting("ENGINE_BIND")
        env = {**os.environ}
        if engine.kind == EngineKind.VLLM:
            rank = vllm.max_lora_rank(
                [engine.max_lora_rank, *(vllm.lora_rank(e.adapter) for e in wanted if e.adapter)]
            )
            self.ranks[engine.pk] = rank
            try:
                args = vllm.command(engine.base, port, host=bind, max_lora_rank=rank)
            except vllm.VllmMissing as exc:
                self.failures[engine.pk] = MAX_FAILED_STARTS
                self._save(engine, status=EngineStatus.FAILED, message=str(exc))
                self._endpoints(wanted, "failed", str(exc))
                return
            env.update(vllm.environment())
        else:
            args = [sys.executable, "-m", "workers.serving", "engine", "--model", engine.base,
                    "--port", str(port), "--host", bind, "--parent", str(os.getpid())]  # fmt: skip
            for endpoint in wanted:
                if endpoint.adapter:
                    args += ["--adapter", f"{endpoint.served_name}={endpoint.adapter}"]
        log_path = self.logs / f"engine-{engine.pk}.log"
        with log_path.open("ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(args)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                preexec_fn=partial(die_with_parent, signal.SIGTERM),
            )  # fmt: skip
        self.procs[engine.pk] = proc
        log.info("engine %s for %s starting (pid %s, port %s)", engine.pk, engine.base, proc.pid, port)
        self._save(engine, status=EngineStatus.LOADING, port=port, pid=proc.pid, host=_setting("ENGINE_HOST"),
                   started_at=timezone.now(), wake_requested_at=None,
                   message="Loading the model." if not engine.restarts else engine.message)  # fmt: skip
        self._endpoints(wanted, "loading", "Loading the model.")

    def _kill(self, pk: int) -> None:
        proc = self.procs.pop(pk, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _failure_reason(self, pk: int) -> str:
        text = (self.logs / f"engine-{pk}.log").read_text(errors="replace")
        last_start = text.rsplit("\n--- ", 1)[-1]
        for line in reversed(last_start.splitlines()):
            if "ENGINE FAILED:" in line:
                return line.split("ENGINE FAILED:", 1)[1].strip()
        lines = [line for line in last_start.splitlines()[1:] if line.strip()]
        return "The engine exited while loading: " + (lines[-1] if lines else "no output.")

    # Rows -------------------------------------------------------------------------------------------------

    def _save(self, engine: Any, **fields: Any) -> None:
        from apps.endpoints.models import Engine

        changed = {k: v for k, v in fields.items() if getattr(engine, k) != v}
        if changed:
            Engine.objects.filter(pk=engine.pk).update(**changed)
            for k, v in changed.items():
                setattr(engine, k, v)

    def _endpoints(self, endpoints: list[Any], status: str, message: str) -> None:
        from django.utils import timezone

        from apps.endpoints.models import Endpoint

        for endpoint in endpoints:
            if endpoint.status == status and endpoint.message == message:
                continue
            fields: dict[str, Any] = {"status": status, "message": message}
            if status == "ready" and endpoint.status != "ready":
                fields["ready_at"] = timezone.now()
            Endpoint.objects.filter(pk=endpoint.pk, active=True).update(**fields)
            for k, v in fields.items():
                setattr(endpoint, k, v)


def _setting(name: str) -> Any:
    from django.conf import settings

    return getattr(settings, name)


def main(argv: list[str]) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")
    django.setup()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    Supervisor(poll=float(argv[0]) if argv else 1.0).run()


if __name__ == "__main__":
    main(sys.argv[1:])
