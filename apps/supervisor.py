"""A small process supervisor for `make run`: the processes of a Procfile, one output, one Ctrl-C.

Why not honcho: under honcho 2.0, a stdout that went away (a closed terminal, a pipe whose reader died)
left it hung in its signal handler, ignoring SIGTERM, with all seven processes still running, and a
SIGHUP (closing the terminal) kills it without stopping its children; and one process that died stopped
all the others. Here output errors are ignored, SIGINT, SIGTERM and SIGHUP all stop everything, and every
process runs in its own process group, so stopping a group also stops what that process started (MLflow's
uvicorn, Celery's pool). A process that exits by itself is started again, after a pause that doubles with
each quick exit (1 s up to 30 s) and starts over once it has stayed up a while; what it had started is
killed first, so that a Celery pool child (and the trainer that dies with it) never outlives its worker
and competes with the replacement. Imports nothing from Django.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from workers.processes import signal_group

GRACE_SECONDS = 10.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
# Up this long, a process counts as healthy again: its next exit waits BACKOFF_FIRST, not longer.
STABLE_SECONDS = 60.0
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


def shell_line(command: str) -> str:
    """The command, run by `exec` when it is one simple command: then the process we watch (and whose
    exit code we print) is the program itself, not a shell that turns its SIGKILL into status 137."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        tokens = list(lexer)
    except ValueError:
        return command  # unbalanced quotes: let the shell say so
    compound = any(t and all(c in "();<>|&" for c in t) and t not in {">", "<", ">>"} for t in tokens)
    # A shell builtin or keyword (exit, while, cd) or a variable assignment cannot be exec'd.
    program = bool(tokens) and ("/" in tokens[0] or shutil.which(tokens[0]) is not None)
    return f"exec {command}" if program and not compound else command


def describe_exit(code: int) -> str:
    """`-9 (SIGKILL)` for a signal, the plain status otherwise."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"{code} ({signal.Signals(-code).name})"
    return str(code)


@dataclass
class _Slot:
    """One Procfile process across its restarts."""

    child: subprocess.Popen[bytes]
    pump: threading.Thread
    started: float
    delay: float = 0.0  # the pause before the next start; 0 until it first exits
    restarts: int = 0
    due: float | None = None  # when it is started again, while it is down


@dataclass
class Supervisor:
    processes: dict[str, str]
    cwd: str | None = None
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    backoff_first: float = BACKOFF_FIRST
    backoff_max: float = BACKOFF_MAX
    stable_seconds: float = STABLE_SECONDS
    _slots: dict[str, _Slot] = field(default_factory=dict)
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

    def _spawn(self, name: str) -> tuple[subprocess.Popen[bytes], threading.Thread]:
        child = subprocess.Popen(  # noqa: S602 - Procfile lines are shell command lines
            shell_line(self.processes[name]),
            shell=True,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group, so stopping it stops what it started
        )
        assert child.stdout is not None
        pump = threading.Thread(target=self._pump, args=(name, child.stdout), daemon=True)
        pump.start()
        return child, pump

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        for name in self.processes:
            child, pump = self._spawn(name)
            self._slots[name] = _Slot(child, pump, time.monotonic())
            self._print("system", f"{name} started (pid {child.pid})")
        while not self._stop.wait(0.2):
            for name, slot in self._slots.items():
                if self._stop.is_set():
                    break
                if slot.due is None and slot.child.poll() is not None:
                    self._exited(name, slot)
                elif slot.due is not None and time.monotonic() >= slot.due:
                    slot.child, slot.pump = self._spawn(name)
                    slot.started, slot.due = time.monotonic(), None
                    self._print("system", f"{name} started again (pid {slot.child.pid})")
        self._stop_all()
        return 0

    def _exited(self, name: str, slot: _Slot) -> None:
        code = slot.child.returncode
        # What it started (a Celery pool child, MLflow's uvicorn) goes with it, before a replacement starts.
        signal_group(slot.child, signal.SIGKILL)
        slot.pump.join(timeout=1.0)  # its last lines before ours
        now = time.monotonic()
        if slot.delay == 0.0 or now - slot.started >= self.stable_seconds:
            slot.delay = self.backoff_first
        else:
            slot.delay = min(self.backoff_max, slot.delay * 2)
        slot.restarts += 1
        slot.due = now + slot.delay
        self._print(
            "system",
            f"{name} exited with code {describe_exit(code)}; restarting in {slot.delay:g} s, "
            f"restart {slot.restarts}",
        )

    def _stop_all(self) -> None:
        running = {n: s for n, s in self._slots.items() if s.due is None}
        for slot in running.values():
            signal_group(slot.child, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for name, slot in running.items():
            try:
                slot.child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._print("system", f"{name} did not stop in {GRACE_SECONDS:.0f} s: killing it")
            # The leader may be gone while its group lives on (a shell's children): kill the group.
            signal_group(slot.child, signal.SIGKILL)
            slot.child.wait()
            slot.pump.join(timeout=1.0)  # its last lines before ours
            self._print("system", f"{name} stopped")
