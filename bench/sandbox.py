"""The Python grader sandbox's cost per spawn: the hardened sandbox (unprivileged uid, seccomp, a
trusted harness that forks the grader and checks each answer) against the one before it (bubblewrap as
the worker's uid, results on stdout; its source taken from git, `--baseline REV`), on a trivial grader,
one completion and a batch of 32, interleaved repeats, medians. Prints a table and writes
bench/results/sandbox.json (or --out).

    python bench/sandbox.py [--repeats 20] [--baseline df7ccb2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workers.training.graders import sandbox  # noqa: E402

GRADER = "def grade(completion, answer):\n    return float(completion == answer)\n"


def baseline_module(rev: str) -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{rev}:workers/training/graders/sandbox.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    module = types.ModuleType("baseline_sandbox")
    exec(compile(source, "baseline_sandbox.py", "exec"), module.__dict__)  # noqa: S102 - our own source, from git
    return module


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--baseline", default="df7ccb2", help="the git revision of the sandbox before")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sandbox.json"))
    args = parser.parse_args()

    state = sandbox.sandbox_state()
    old = baseline_module(args.baseline)
    runners = {"hardened": sandbox.run_python_grader, "before": old.run_python_grader}
    times: dict[str, dict[str, list[float]]] = {name: {"1": [], "32": []} for name in runners}
    for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits both alike
        for name, run in runners.items():
            for n in (1, 32):
                began = time.perf_counter()
                scores = run(GRADER, ["a"] * n, [{"answer": "a"}] * n)
                times[name][str(n)].append(time.perf_counter() - began)
                assert scores == [1.0] * n, (name, scores)
    median = {
        name: {n: round(statistics.median(v) * 1000, 1) for n, v in by.items()} for name, by in times.items()
    }
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "worker_uid": os.geteuid(), "sandbox": state.detail, "baseline": args.baseline, "repeats": args.repeats,
        "median_ms": median,
        "ratio_hardened_over_before": {n: round(median["hardened"][n] / median["before"][n], 2) for n in ("1", "32")},
    }  # fmt: skip
    print(f"{'sandbox':<10}{'1 completion ms':>18}{'32 completions ms':>20}")
    for name, by in median.items():
        print(f"{name:<10}{by['1']:>18.1f}{by['32']:>20.1f}")
    print(f"hardened / before: {result['ratio_hardened_over_before']}; {state.detail}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
