"""The supervisor behind `make run`: every process stops, whatever ends the run."""

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


def test_one_process_exiting_stops_the_others_and_reports_failure():
    code = "import sys; from apps.supervisor import Supervisor; sys.exit(Supervisor({'a': 'sleep 300', 'b': 'exit 3'}).run())"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert result.returncode == 3
    assert "b exited with code 3: stopping everything" in result.stdout
    assert "a stopped" in result.stdout


def test_the_procfile_parser_skips_comments_and_rejects_nonsense():
    assert parse_procfile("# slot\nweb: run it: now\n\nworker:go\n") == {"web": "run it: now", "worker": "go"}
    with pytest.raises(ValueError, match="Not a Procfile line"):
        parse_procfile("just words")
