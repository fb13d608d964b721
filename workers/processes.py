"""Child processes that never outlive their parent, and signals to a process group.

The one copy of these for every process Atelier starts: the worker's trainers and replicas
(workers/runner.py, workers/replicas.py), the engine supervisor's engines (workers/engines.py), the built-in
engine (workers/serving/engine.py), `make run`'s processes (apps/supervisor.py) and the training layer's
own children (resilient replicas, the grader sandbox). Both sides of the house import it, so it imports
only the standard library: no Django (workers/serving and workers/training never import it) and no torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Have the kernel send `signum` to this process when its parent dies. Run in the child before exec
    (subprocess's preexec_fn): a worker killed by the OOM killer or SIGKILL then never leaves a trainer
    behind writing into a folder that the job's next worker resumes from, and a restarted engine
    supervisor starts from a clean slate. Linux only; elsewhere a lease or exit_with_parent still applies.
    The signal goes when the parent's *thread* that started the child ends, so start children from a
    thread that lives as long as they should."""
    # ctypes is imported at the top, not here: an import in a forked child of a threaded parent can
    # deadlock on the import lock that another thread held at the fork.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signum)


def exit_with_parent(parent: int, every: float = 1.0) -> threading.Thread:
    """Watch, from a daemon thread, that this process's parent is still `parent`, and leave at once
    (os._exit: no clean-up to hang in) when it is not: it died and this process was handed to init. For
    a child whose SIGTERM from die_with_parent a server may be slow to act on, or where prctl is missing."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(0)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def signal_group(process: subprocess.Popen[Any] | int, signum: int) -> None:
    """Send `signum` to a process group: a child started with start_new_session=True (its pid is its
    group's id), so what it started gets it too, or a group id. Nothing when the group is gone already,
    or is not ours to signal (a group id written down earlier may have been reused)."""
    pgid = process if isinstance(process, int) else process.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def kill_group(process: subprocess.Popen[Any] | int) -> None:
    """SIGKILL a process group (see signal_group)."""
    signal_group(process, signal.SIGKILL)
