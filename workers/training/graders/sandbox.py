"""Users' Python graders, run out of process in a bubblewrap sandbox that holds whether the worker runs
as root or not.

- bwrap itself runs as an unprivileged host uid: the worker's own, or, when the worker is root,
  `ATELIER_SANDBOX_UID` (default 65534, nobody). Root in a sandbox's user namespace would still be root's
  kernel uid: RLIMIT_NPROC does not bind it and read-only binds can be remounted writable.
- Inside: new user, PID, network, IPC, UTS and cgroup namespaces, no further user namespaces, no
  capabilities, no new privileges, a seccomp filter refusing mounts, namespaces, ptrace and the like
  (see seccomp.py), read-only system and Python folders and nothing else of the host (not the data
  folder), a private size-bounded /tmp, an empty environment, no network but loopback.
- A trusted harness (the sandbox's first process) forks the grader's process, which sets its CPU, memory
  and process limits, closes the result descriptor, installs a second filter that refuses fork and exec,
  and only then loads the user's code. It answers one line a completion over a pipe; the harness checks
  each answer and writes it to a descriptor the host passed in. The harness is not dumpable, so the
  grader cannot reach that descriptor through /proc either. What the grader prints never counts, and a
  grader that ends early scores 0 for every completion it did not answer.

A grader that breaks any rule, raises, or returns something that is not a number scores 0 for that
completion, and the reason is logged. `sandbox_state()` checks once a process that this host can make
the sandbox safe; where it cannot, Python graders are refused.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import pwd
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.processes import kill_group
from workers.training.graders import seccomp

log = logging.getLogger("atelier.graders")

SANDBOX_UID_ENV = "ATELIER_SANDBOX_UID"
DEFAULT_SANDBOX_UID = 65534
TMP_BYTES = 64 * 1024 * 1024  # the private /tmp's size
MAX_THREADS = 16  # the grader's RLIMIT_NPROC: threads only, fork and exec are refused outright
MAX_REASON = 500

HARNESS = r"""
import ctypes, json, math, os, resource, signal, sys
result = os.fdopen(int(sys.argv[1]), "w", buffering=1)
job = json.load(sys.stdin)
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 4, 38, 22, 2
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
def no_spawn():
    code = bytes.fromhex(job["no_spawn"])
    prog = Prog(len(code) // 8, code)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0):
        raise OSError(ctypes.get_errno(), "the process filter could not be installed")
def emit(obj):
    result.write(json.dumps(obj) + "\n")
def short(text):
    return str(text)[:%(max_reason)d]
# Not dumpable: the grader (same uid) cannot open this process's descriptors through /proc.
libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
to_parent_r, to_parent_w = os.pipe()
child = os.fork()
if child == 0:
    try:
        result.close()
        os.close(to_parent_r)
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        mem = job["memory_mb"] * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_seconds"], job["cpu_seconds"] + 1))
        resource.setrlimit(resource.RLIMIT_NPROC, (job["max_threads"], job["max_threads"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # bwrap's own first process keeps the host's stderr file, which /proc/1/fd/2 reaches: bound it.
        resource.setrlimit(resource.RLIMIT_FSIZE, (job["max_file_bytes"], job["max_file_bytes"]))
        no_spawn()
        answers = os.fdopen(to_parent_w, "w", buffering=1)
    except BaseException as exc:
        os.write(to_parent_w, (json.dumps({"fatal": short(f"the sandbox could not start: {exc}")}) + "\n").encode())
        os._exit(1)
    code, completions, rows = job["code"], job["completions"], job["rows"]
    del job
    try:
        namespace = {"__name__": "grader"}
        exec(compile(code, "grader.py", "exec"), namespace)
        grade = namespace["grade"]
        import inspect
        params = inspect.signature(grade).parameters.values()
        takes_all = any(p.kind is p.VAR_KEYWORD for p in params)
        names = {p.name for p in params}
    except BaseException as exc:
        answers.write(json.dumps({"fatal": short(f"the grader did not load: {type(exc).__name__}: {exc}")}) + "\n")
        os._exit(0)
    answers.write('{"loaded": true}\n')
    for completion, row in zip(completions, rows):
        try:
            # Only the columns grade() asks for, unless it takes **row: `grade(completion, answer)` works.
            score = float(grade(completion, **{k: v for k, v in row.items() if takes_all or k in names}))
            if not math.isfinite(score):
                raise ValueError(f"it returned {score}")
            answers.write(json.dumps({"score": score}) + "\n")
        except BaseException as exc:
            answers.write(json.dumps({"error": short(f"{type(exc).__name__}: {exc}")}) + "\n")
    os._exit(0)
os.close(to_parent_w)
n = len(job["completions"])
cpu = job["cpu_seconds"]
del job["code"], job["completions"], job["rows"]
no_spawn()
answers = os.fdopen(to_parent_r, "rb")
def read():
    line = answers.readline(65536)
    if not line:
        return None
    try:
        value = json.loads(line)
        return value if isinstance(value, dict) else {"error": "the grader's process answered something that is not a score"}
    except ValueError:
        return {"error": "the grader's process answered something that is not a score"}
def stopped():
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
        return f"the grader was stopped at its CPU time limit of {cpu} s"
    if os.WIFSIGNALED(status):
        return f"the grader's process was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"the grader's process exited (status {os.WEXITSTATUS(status)}) before it scored this completion"
first = read()
if first is not None and "fatal" in first:
    emit({"fatal": short(first["fatal"])})
    sys.exit(0)
if first is not None and first != {"loaded": True}:
    emit({"fatal": "the grader wrote on the sandbox's answer channel before it loaded"})
    sys.exit(0)
done = 0
for i in range(0 if first else n, n):
    answer = read()
    if answer is None:
        break
    score = answer.get("score")
    if type(score) in (int, float) and math.isfinite(score):
        emit({"i": i, "score": min(1.0, max(0.0, float(score)))})
    else:
        emit({"i": i, "error": short(answer.get("error") or "the grader's process answered something that is not a score")})
    done = i + 1
if done < n:
    reason = stopped()
    for i in range(done, n):
        emit({"i": i, "error": reason})
else:
    os.kill(child, signal.SIGKILL)
emit({"done": True})
""" % {"max_reason": MAX_REASON}  # noqa: UP031 - the harness is Python source with its own braces


@dataclass(frozen=True)
class SandboxState:
    """Whether this host can run Python graders safely, and why (what the health page shows)."""

    safe: bool
    detail: str


class SandboxUnsafe(ValueError):
    """Raised where a Python grader is chosen or run on a host whose sandbox did not pass its check."""


def _ids() -> tuple[int, int] | None:
    """The host uid and gid that bwrap runs as: None when the worker is not root (its own)."""
    if os.geteuid() != 0:
        return None
    raw = os.environ.get(SANDBOX_UID_ENV, str(DEFAULT_SANDBOX_UID)).strip()
    if not raw.isdigit() or int(raw) == 0:
        raise SandboxUnsafe(f"{SANDBOX_UID_ENV} must be the number of an unprivileged user, not “{raw}”")
    uid = int(raw)
    try:
        gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        gid = uid
    if gid == 0:
        raise SandboxUnsafe(f"the sandbox user {uid} has group 0 (root); choose another {SANDBOX_UID_ENV}")
    return uid, gid


def _reachable(path: Path, ids: tuple[int, int] | None) -> bool:
    """Whether the sandbox's uid can open this file: every folder above it searchable, the file readable."""
    if ids is None:
        return os.access(path, os.R_OK | os.X_OK)
    uid, gid = ids
    try:
        resolved = path.resolve(strict=True)
    except OSError:
        return False
    for part in [*reversed(resolved.parents), resolved]:
        info = part.stat()
        bits = 0o1 if part != resolved else 0o5
        shift = 6 if info.st_uid == uid else 3 if info.st_gid == gid else 0
        if (info.st_mode >> shift) & bits != bits:
            return False
    return True


def _interpreter(ids: tuple[int, int] | None) -> tuple[str, list[str]]:
    """This worker's Python when the sandbox user can read it (its installation bound read-only), else
    the system's (a root worker's pyenv under /root is out of nobody's reach); the harness and graders
    need only the standard library."""
    own = Path(sys.base_prefix) / "bin" / "python3"
    if _reachable(own, ids):
        return str(own), list(dict.fromkeys([sys.base_prefix, sys.base_exec_prefix]))
    for system in (Path("/usr/bin/python3"), Path("/usr/local/bin/python3")):
        if _reachable(system, ids):
            return str(system), []
    raise SandboxUnsafe(
        "no Python interpreter that the sandbox user can read (this worker's is under a private folder)"
    )


def _command(bwrap: str, python: str, prefixes: list[str], seccomp_fd: int, result_fd: int) -> list[str]:
    binds: list[str] = []
    for path in [
        "/usr",
        "/lib",
        "/lib64",
        "/bin",
        "/sbin",
        "/etc/alternatives",
        "/etc/ld.so.cache",
        *prefixes,
    ]:
        binds += ["--ro-bind-try", path, path]
    return [
        bwrap, *binds, "--size", str(TMP_BYTES), "--tmpfs", "/tmp",  # noqa: S108
        "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/",
        "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
        # --as-pid-1: no bwrap reaper inside, whose memory (/proc/1/mem) the grader could write to escape the
        # no-fork filter; the harness is PID 1, which the grader cannot signal or reach through /proc.
        "--as-pid-1", "--die-with-parent", "--new-session", "--seccomp", str(seccomp_fd),
        "--clearenv", "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--chdir", "/tmp",  # noqa: S108
        python, "-I", "-S", "-c", HARNESS, str(result_fd),
    ]  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    kill_group(process)  # bwrap's group; --die-with-parent takes the sandbox along
    process.wait()


def _run(code: str, completions: list[str], rows: list[dict[str, Any]], *, wall_seconds: float,
         cpu_seconds: int, memory_mb: int) -> list[tuple[float, str | None]]:  # fmt: skip
    """Score the completions in one sandbox; (score, reason or None) a completion."""
    n = len(completions)
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return [(0.0, "the sandbox (bubblewrap, Debian package 'bubblewrap') is not installed")] * n
    try:
        ids = _ids()
        python, prefixes = _interpreter(ids)
        base = seccomp.base_filter()
        no_spawn = seccomp.no_spawn_filter()
    except (SandboxUnsafe, seccomp.UnsupportedArchitecture) as exc:
        return [(0.0, str(exc))] * n
    job = {"code": code, "completions": completions, "rows": rows, "memory_mb": memory_mb,
           "cpu_seconds": cpu_seconds, "max_threads": MAX_THREADS, "max_file_bytes": TMP_BYTES, "no_spawn": no_spawn.hex()}  # fmt: skip
    pairs: list[tuple[float, str | None] | None] = [None] * n
    fatal: str | None = None
    finished = False
    # The job goes in on stdin (an unlinked file), the filter on its own descriptor, the answers come
    # back on a pipe only the harness holds; stdout is not read at all.
    with tempfile.TemporaryFile() as job_file, tempfile.TemporaryFile() as errors:
        job_file.write(json.dumps(job, default=str).encode())
        job_file.seek(0)
        filter_r, filter_w = os.pipe()
        os.write(filter_w, base)  # a few hundred bytes: well within a pipe's buffer
        os.close(filter_w)
        result_r, result_w = os.pipe()
        user = {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}
        try:
            process = subprocess.Popen(
                _command(bwrap, python, prefixes, filter_r, result_w),
                stdin=job_file, stdout=subprocess.DEVNULL, stderr=errors, pass_fds=(filter_r, result_w),
                env={}, start_new_session=True, **user,  # type: ignore[call-overload]
            )  # fmt: skip
        except OSError as exc:
            os.close(result_r)
            return [(0.0, f"the sandbox could not start: {exc}")] * n
        finally:
            os.close(filter_r)
            os.close(result_w)
        deadline = time.monotonic() + wall_seconds
        buffer = b""
        timed_out = False
        with os.fdopen(result_r, "rb", buffering=0) as result:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([result], [], [], left)[0]:
                    timed_out = True
                    break
                chunk = result.read(65536)
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    fatal, finished = _take(line, pairs, fatal, finished)
                if len(buffer) > 1 << 20:
                    fatal = "the sandbox's answer was too long"
                    break
        _stop(process)
        errors.seek(0)
        stderr = errors.read()[-2000:].decode(errors="replace").strip()
    if fatal is not None:
        return [(0.0, fatal)] * n
    if timed_out:
        missing = f"the grader ran past its time limit of {wall_seconds:g} s"
    else:
        missing = "the sandbox ended without scoring this completion" + (
            f": {stderr[-300:]}" if stderr else ""
        )
    return [pair if pair is not None else (0.0, missing) for pair in pairs]


def _take(line: bytes, pairs: list[tuple[float, str | None] | None], fatal: str | None,
          finished: bool) -> tuple[str | None, bool]:  # fmt: skip
    """One line from the harness, checked again: scores in order, in [0, 1], finite."""
    try:
        value = json.loads(line)
    except ValueError:
        return "the sandbox answered something that is not JSON", finished
    if not isinstance(value, dict) or fatal is not None or finished:
        return fatal, finished
    if "fatal" in value:
        return str(value["fatal"])[:MAX_REASON], finished
    if value.get("done") is True:
        return fatal, True
    i, score, error = value.get("i"), value.get("score"), value.get("error")
    if (
        type(i) is not int
        or not 0 <= i < len(pairs)
        or pairs[i] is not None
        or any(p is None for p in pairs[:i])
    ):
        return "the sandbox answered out of order", finished
    if isinstance(score, int | float) and not isinstance(score, bool) and 0.0 <= score <= 1.0:
        pairs[i] = (float(score), None)  # NaN fails the comparison
    else:
        pairs[i] = (0.0, str(error or "no score")[:MAX_REASON])
    return fatal, finished


def run_python_grader(
    code: str,
    completions: list[str],
    rows: list[dict[str, Any]],
    *,
    wall_seconds: float = 10.0,
    cpu_seconds: int = 5,
    memory_mb: int = 512,
    details: bool = False,
) -> Any:
    """Scores in [0, 1], one a completion; with details=True, (score, reason or None) pairs."""
    pairs = _run(
        code, completions, rows, wall_seconds=wall_seconds, cpu_seconds=cpu_seconds, memory_mb=memory_mb
    )
    for _score, reason in pairs:
        if reason:
            log.warning("python grader scored 0: %s", reason)
    return pairs if details else [score for score, _ in pairs]


# The self-check, run in the sandbox as a grader: 1.0 when every promise holds, else the broken ones.
PROBE = r"""
import ctypes, os, resource, socket, threading
def grade(completion, **row):
    broken = []
    status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
    if os.getuid() == 0 or os.geteuid() == 0:
        broken.append("the grader runs as root")
    if int(status["CapEff"], 16) or int(status["CapPrm"], 16):
        broken.append("the grader has capabilities")
    if status.get("NoNewPrivs", "0").strip() != "1":
        broken.append("no_new_privs is off")
    if status.get("Seccomp", "0").strip() != "2":
        broken.append("no seccomp filter")
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                with open(f"/proc/{pid}/mem", "rb"):
                    broken.append(f"process {pid}'s memory is readable")
            except OSError:
                pass
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"none", b"/usr", None, 32 | 4096 | 1, None) == 0:  # MS_REMOUNT | MS_BIND | MS_RDONLY
        broken.append("mount is allowed")
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        broken.append("fork is allowed")
    except OSError:
        pass
    names = sorted(name for _, name in socket.if_nameindex())
    if names != ["lo"]:
        broken.append(f"network interfaces {names} are visible")
    if set(os.environ) - {"PYTHONDONTWRITEBYTECODE", "PWD", "LC_CTYPE"}:  # the last two: bwrap --chdir, PEP 538
        broken.append("the environment is not empty")
    resource.setrlimit(resource.RLIMIT_NPROC, (1, resource.getrlimit(resource.RLIMIT_NPROC)[1]))
    try:
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
        broken.append("the process limit does not bind")
    except RuntimeError:
        pass
    if broken:
        raise RuntimeError("; ".join(broken))
    return 1.0
"""


@functools.cache
def sandbox_state() -> SandboxState:
    """Can this host make the sandbox safe? Checked once a process by running a probe in it."""
    try:
        ids = _ids()
    except SandboxUnsafe as exc:
        return SandboxState(False, str(exc))
    [(score, reason)] = _run(PROBE, ["probe"], [{}], wall_seconds=20, cpu_seconds=5, memory_mb=512)
    if score != 1.0:
        return SandboxState(False, f"the sandbox is not safe on this host: {reason}")
    who = f"uid {ids[0]} ({SANDBOX_UID_ENV})" if ids else f"the worker's own uid {os.geteuid()}"
    return SandboxState(True, f"Python graders run as {who} in their own namespaces: no capabilities, "
                              "seccomp, no fork or exec, no network, read-only system folders")  # fmt: skip


def require_safe() -> None:
    """Refuse a Python grader with the self-check's reason on a host where the sandbox cannot hold."""
    state = sandbox_state()
    if not state.safe:
        raise SandboxUnsafe(f"Python graders are turned off on this server: {state.detail}.")
