"""The embedded MLflow server's cost per authenticated request, as `make run` starts it (apps.launcher:
MLflow's basic-auth app with its credential cache on) against the same server with the cache off (each
request's password checked with its scrypt hash, as before), started one after the other in this
process on a fresh data folder, the same requests to each. Prints a table and writes
bench/results/mlflow_auth.json (or --out).

    python bench/mlflow_auth.py [--requests 100]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apps import env  # noqa: E402

PORT = 5099


def measure(folder: Path, cache_seconds: int, requests: int) -> dict[str, float]:
    environ = os.environ | {"ATELIER_DATA_DIR": str(folder), "ATELIER_MLFLOW_PORT": str(PORT),
                            "ATELIER_MLFLOW_AUTH_CACHE_SECONDS": str(cache_seconds)}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "apps.launcher", "mlflow"], cwd=ROOT, env=environ,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        os.environ["ATELIER_DATA_DIR"] = str(folder)
        user, password = env.mlflow_credentials() or ("", "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        url = f"http://127.0.0.1:{PORT}/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
        ask = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        urllib.request.urlopen(ask).read()  # noqa: S310 - our own http URL; the first check is paid either way
        process = psutil.Process(server.pid)
        tree = [process, *process.children(recursive=True)]
        cpu = sum(p.cpu_times().user + p.cpu_times().system for p in tree)
        began = time.perf_counter()
        for _ in range(requests):
            urllib.request.urlopen(ask).read()  # noqa: S310
        wall = time.perf_counter() - began
        cpu = sum(p.cpu_times().user + p.cpu_times().system for p in tree) - cpu
        return {"ms_per_request": 1000 * wall / requests, "server_cpu_ms_per_request": 1000 * cpu / requests}
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "mlflow_auth.json")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="atelier-mlflow-bench-"))
    try:
        baseline = measure(folder, 0, args.requests)
        cached = measure(folder, 3600, args.requests)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "requests": args.requests,
        "baseline (credential cache off)": baseline,
        "as shipped (credential cache on)": cached,
        "ratio_time": round(cached["ms_per_request"] / baseline["ms_per_request"], 3),
        "ratio_server_cpu": round(
            cached["server_cpu_ms_per_request"] / baseline["server_cpu_ms_per_request"], 3
        ),
    }
    print(f"{'':34} {'ms/request':>11} {'server CPU ms':>14}")
    for name in ("baseline (credential cache off)", "as shipped (credential cache on)"):
        print(
            f"{name:34} {result[name]['ms_per_request']:11.1f} {result[name]['server_cpu_ms_per_request']:14.1f}"
        )
    print(f"ratio (shipped / baseline): time {result['ratio_time']}, server CPU {result['ratio_server_cpu']}")
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
