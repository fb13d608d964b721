"""Peak memory of a command and every process it starts, sampled every 50 ms (psutil): what the
benchmarks set beside the memory estimate."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import psutil


def peak_rss(command: list[str], log: Path, *, cwd: Path, with_stderr: bool = True) -> tuple[float, int, int]:
    """Run a command with its output in `log`; (wall seconds, peak RSS in bytes of it and its children,
    exit code)."""
    started = time.perf_counter()
    with log.open("w") as out:
        errors = subprocess.STDOUT if with_stderr else subprocess.DEVNULL
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=errors)
        watched = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):  # a child that ended between the two calls
                peak = max(
                    peak, sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)])
                )
            time.sleep(0.05)
    return time.perf_counter() - started, peak, proc.returncode
