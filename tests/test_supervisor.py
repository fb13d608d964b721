"""The supervisor behind `make run`: a process that dies comes back, and every process stops, whatever
ends the run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from apps.supervisor import parse_procfile

SCRIPT = """
import sys
from apps.supervisor import Supervisor
sys.exit(Supervisor({
    "one": "sleep 300",
    # A process that starts a child of its own, as MLflow and Celery do.
    "two": "sh -c 'sleep 301 & wait'",
    "talker": "while true; do echo chatter; sleep 0.05; done",
}).run())
"""


def _start(tmp_path: Path, stdout: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
        start_new_session=True,
    )


def _descendants_when_up(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = psutil.Process(proc.pid).children(recursive=True)
        commands = []
        for kid in kids:
            # The talker's short-lived `sleep 0.05` children come and go (and are zombies a moment).
            with contextlib.suppress(psutil.Error):
                commands.append(" ".join(kid.cmdline()))
        if any("sleep 300" in c for c in commands) and any("sleep 301" in c for c in commands):
            return kids
        time.sleep(0.1)
    raise AssertionError("the processes did not start")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_each_stop_signal_stops_every_process_and_their_children(tmp_path, signum):
    proc = _start(tmp_path, subprocess.DEVNULL)
    kids = _descendants_when_up(proc)
    os.kill(proc.pid, signum)
    assert proc.wait(15) == 0
    _gone, alive = psutil.wait_procs(kids, timeout=5)
    assert not alive


def test_a_terminal_that_went_away_does_not_stop_it_from_stopping_everything(tmp_path):
    read_end, write_end = os.pipe()
    proc = _start(tmp_path, write_end)
    os.close(write_end)
    kids = _descendants_when_up(proc)
    os.close(read_end)  # the reader is gone: every later write fails with EPIPE
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(15)
    _gone, alive = psutil.wait_procs(kids, timeout=5)
    assert not alive


RESTARTING = """
import sys
from apps.supervisor import Supervisor
sys.exit(Supervisor({
    "steady": "sleep 300",
    "family": "sh -c 'sleep 302 & wait'",
    "quitter": "echo up; exit 3",
    "slow": "sleep 0.8; exit 4",
}, backoff_first=0.2, backoff_max=0.4, stable_seconds=0.5).run())
"""


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = path.read_text()
        if text in out:
            return out
        assert proc.poll() is None, out
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never printed:\n{path.read_text()}")


def _sleeps(pid: int, seconds: str) -> list[psutil.Process]:
    found = []
    for kid in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if kid.cmdline() == ["sleep", seconds]:
                found.append(kid)
    return found


def test_a_process_that_dies_is_started_again_with_a_growing_pause_and_the_others_run_on(tmp_path):
    log = tmp_path / "out.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", RESTARTING],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
            start_new_session=True,
        )
    try:
        _wait_for(log, "quitter exited with code 3; restarting in 0.4 s, restart 3", proc)
        text = _wait_for(log, "slow exited with code 4; restarting in 0.2 s, restart 2", proc)
        assert "quitter exited with code 3; restarting in 0.2 s, restart 1" in text
        assert "quitter exited with code 3; restarting in 0.4 s, restart 2" in text  # doubled, then capped
        assert "quitter started again" in text
        assert "steady exited" not in text and "family exited" not in text

        # A SIGKILLed process: what it started dies with it, and a fresh one takes its place.
        [old_sleep] = _sleeps(proc.pid, "302")
        os.kill(old_sleep.parent().pid, signal.SIGKILL)
        _wait_for(log, "family exited with code -9 (SIGKILL); restarting in 0.2 s, restart 1", proc)
        assert old_sleep.wait(5) is not None or not old_sleep.is_running()
        _wait_for(log, "family started again", proc)
        deadline = time.monotonic() + 10
        while not _sleeps(proc.pid, "302") and time.monotonic() < deadline:
            time.sleep(0.1)
        [new_sleep] = _sleeps(proc.pid, "302")
        assert new_sleep.pid != old_sleep.pid
        [steady] = _sleeps(proc.pid, "300")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(15) == 0
    _gone, alive = psutil.wait_procs([steady, new_sleep], timeout=5)
    assert not alive


def test_the_procfile_parser_skips_comments_and_rejects_nonsense():
    assert parse_procfile("# slot\nweb: run it: now\n\nworker:go\n") == {"web": "run it: now", "worker": "go"}
    with pytest.raises(ValueError, match="Not a Procfile line"):
        parse_procfile("just words")
