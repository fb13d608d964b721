"""A small process supervisor for `make run`: the processes of a Procfile, one output, one Ctrl-C.

Why not honcho: under honcho 2.0, a stdout that went away (a closed terminal, a pipe whose reader died)
left it hung in its signal handler, ignoring SIGTERM, with all seven processes still running, and a
SIGHUP (closing the terminal) kills it without stopping its children. Here output errors are ignored,
SIGINT, SIGTERM and SIGHUP all stop everything, and every process runs in its own process group, so
stopping a group also stops what that process started (MLflow's uvicorn, Celery's pool).
Imports nothing from Django.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

GRACE_SECONDS = 10.0
COLOURS = ["36", "33", "32", "35", "34", "31", "96", "93"]


def parse_procfile(text: str) -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise ValueError(f"Not a Procfile line (name: command): {line!r}")
        processes[name.strip()] = command.strip()
    return processes


@dataclass
class Supervisor:
    processes: dict[str, str]
    cwd: str | None = None
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    _children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _pumps: dict[str, threading.Thread] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _print(self, name: str, text: str) -> None:
        width = max(len(n) for n in [*self.processes, "system"])
        index = [*self.processes, "system"].index(name) % len(COLOURS)
        colour = COLOURS[index] if self.out.isatty() else ""
        prefix = f"{time.strftime('%H:%M:%S')} {name:<{width}} |"
        if colour:
            prefix = f"\033[{colour}m{prefix}\033[0m"
        with self._lock:
            try:
                self.out.write(f"{prefix} {text}\n")
                self.out.flush()
            except (OSError, ValueError):
                pass  # the terminal is gone: keep supervising, stop printing

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self._print(name, raw.decode(errors="replace").rstrip("\n"))
        stream.close()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._print("system", f"{signal.Signals(signum).name} received, stopping everything")
        self._stop.set()

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        for name, command in self.processes.items():
            child = subprocess.Popen(  # noqa: S602 - Procfile lines are shell command lines
                command,
                shell=True,
                cwd=self.cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group, so stopping it stops what it started
            )
            self._children[name] = child
            assert child.stdout is not None
            pump = threading.Thread(target=self._pump, args=(name, child.stdout), daemon=True)
            pump.start()
            self._pumps[name] = pump
            self._print("system", f"{name} started (pid {child.pid})")
        status = 0
        while not self._stop.wait(0.2):
            exited = [(n, c.returncode) for n, c in self._children.items() if c.poll() is not None]
            if exited:
                name, code = exited[0]
                self._print("system", f"{name} exited with code {code}: stopping everything")
                status = code or 1
                break
        self._stop_all()
        return status

    def _stop_all(self) -> None:
        for child in self._children.values():
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for name, child in self._children.items():
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._print("system", f"{name} did not stop in {GRACE_SECONDS:.0f} s: killing it")
            # The leader may be gone while its group lives on (a shell's children): kill the group.
            _signal_group(child, signal.SIGKILL)
            child.wait()
            self._pumps[name].join(timeout=1.0)  # its last lines before ours
            self._print("system", f"{name} stopped")


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)
