"""Users' Python graders, run out of process in a bubblewrap sandbox: no network, a read-only view of
only the system and Python folders (not the data folder), a private /tmp as the only writable place,
and CPU, memory and wall-time limits. A grader that breaks any of these, raises, or returns something
that is not a number scores 0 for that completion, and the reason is logged."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("atelier.graders")

HARNESS = r"""
import json, math, resource, sys
limits = json.loads(sys.argv[1])
mem = limits["memory_mb"] * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"]))
resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
data = json.load(open("/grader/input.json"))
results = []
try:
    namespace = {"__name__": "grader"}
    exec(compile(open("/grader/grader.py").read(), "grader.py", "exec"), namespace)
    grade = namespace["grade"]
    import inspect
    params = inspect.signature(grade).parameters.values()
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params)
    names = {p.name for p in params}
except BaseException as exc:
    print(json.dumps({"fatal": f"the grader did not load: {type(exc).__name__}: {exc}"}))
    sys.exit(0)
for completion, row in zip(data["completions"], data["rows"]):
    try:
        # Only the columns grade() asks for, unless it takes **row: `grade(completion, answer)` works.
        score = float(grade(completion, **{k: v for k, v in row.items() if takes_all or k in names}))
        if not math.isfinite(score):
            raise ValueError(f"it returned {score}")
        results.append({"score": min(1.0, max(0.0, score))})
    except BaseException as exc:
        results.append({"error": f"{type(exc).__name__}: {exc}"})
print(json.dumps({"results": results}))
"""


def _readonly_binds() -> list[str]:
    """The system folders and this Python's installation, read-only; nothing else of the host."""
    paths = ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc/alternatives", "/etc/ld.so.cache",
             sys.base_prefix, sys.base_exec_prefix]  # fmt: skip
    args: list[str] = []
    for path in dict.fromkeys(paths):
        args += ["--ro-bind-try", path, path]
    return args


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
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        reason = "the sandbox (bubblewrap, Debian package 'bubblewrap') is not installed"
        log.warning("python grader not run: %s", reason)
        return [(0.0, reason)] * len(completions) if details else [0.0] * len(completions)
    with tempfile.TemporaryDirectory(prefix="atelier-grader-") as folder:
        Path(folder, "grader.py").write_text(code)
        Path(folder, "input.json").write_text(
            json.dumps({"completions": completions, "rows": rows}, default=str)
        )
        python = str(Path(sys.base_prefix) / "bin" / "python3")
        limits = json.dumps({"memory_mb": memory_mb, "cpu_seconds": cpu_seconds})
        command = [
            bwrap, *_readonly_binds(), "--ro-bind", folder, "/grader", "--tmpfs", "/tmp",  # noqa: S108
            "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/",
            "--unshare-all", "--die-with-parent", "--new-session",
            "--clearenv", "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--chdir", "/tmp",  # noqa: S108
            python, "-I", "-S", "-c", HARNESS, limits,
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=wall_seconds, check=False)
            output = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
            if not output and done.returncode in (137, 152, -9, -24):  # SIGKILL or SIGXCPU from RLIMIT_CPU
                output = {"fatal": f"the grader was stopped at its CPU time limit of {cpu_seconds} s"}
            elif not output:
                status = f"the grader process ended with status {done.returncode}"
                output = {"fatal": f"{status}: {done.stderr.strip()[-300:]}"}
        except subprocess.TimeoutExpired:
            output = {"fatal": f"the grader ran past its time limit of {wall_seconds:.0f} s"}
        except (ValueError, OSError) as exc:
            output = {"fatal": f"the grader's output could not be read: {exc}"}
    if "fatal" in output:
        pairs = [(0.0, output["fatal"])] * len(completions)
    else:
        pairs = [(r.get("score", 0.0), r.get("error")) for r in output["results"]]
    for _score, reason in pairs:
        if reason:
            log.warning("python grader scored 0: %s", reason)
    return pairs if details else [score for score, _ in pairs]
