"""The pages under load: the jobs list, the dashboard, a job page and the wizard's Data step with 10,000
jobs in one project and 20 people clicking at once.

For each database (SQLite in the data folder, PostgreSQL at 127.0.0.1:5432 in a database of its own) it
makes a fresh data folder, migrates, seeds one project with `--jobs` jobs (the metric history, log tail
and spec of a real finished job each, about 9 KB a row) and a draft at the Data step with an uploaded
`--rows`-row dataset (chosen through the wizard's own views), starts the web server with the command
`make run` starts it with (the `web:` line of `python -m apps.launcher procfile`), and drives each page
with `wrk` (Debian's; `--clients` connections, each asking again as soon as it is answered, for
`--seconds`). It prints p50/p95/p99 latency, requests/s and the SQL queries (and writes) one request of
each page makes, counted in this process with Django's test client on the same database.

    python bench/web.py [--db sqlite,postgres] [--jobs 10000] [--clients 20] [--seconds 30] [--label after]

Writes bench/results/web.json (one entry per label and database, so a run before a change and one after
sit side by side). Needs `wrk` (apt-get install wrk). Never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "web.json"
PORT = 8731
PG = "postgres://postgres@127.0.0.1:5432/atelier_bench_web"

# wrk's own report as JSON: its percentiles are exact over every request it timed.
LUA = """
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function(args) not_ok = 0 end
response = function(status, headers, body) if status ~= 200 then not_ok = not_ok + 1 end end
done = function(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("not_ok") end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %f, "p50_ms": %f, "p95_ms": %f, "p99_ms": %f, "max_ms": %f, '
    .. '"not_200": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, bad, e.connect + e.read + e.write + e.timeout))
end
"""


def _metrics(n: int, rng: random.Random) -> list[dict[str, Any]]:
    loss = 2.5
    points = []
    for step in range(10, 10 * n + 1, 10):
        loss *= 0.97 + rng.random() * 0.02
        points.append({"step": step, "loss": round(loss, 4), "learning_rate": 0.0005, "grad_norm": round(rng.random(), 4),
                       "epoch": round(step / 400, 3), "tokens_per_second": round(900 + rng.random() * 100, 1)})  # fmt: skip
    return points


def seed(jobs: int, rows: int) -> dict[str, Any]:
    """The project, its jobs and a draft at the Data step; returns the URLs and the cookies."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from apps.jobs.models import Job, Kind, Outcome, Status
    from apps.projects.services import project_create

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-password-1")  # noqa: S106
    project = project_create(user=user, name="bench")
    other = project_create(user=user, name="other")  # a second project's jobs share the table
    rng = random.Random(0)  # noqa: S311 - made-up rows, not secrets
    now = timezone.now()
    spec = {"technique": "sft", "model": str(ROOT / "var/models/atelier-tiny/partial"), "method": "lora",
            "dataset": "/data/projects/1/datasets/rows.jsonl", "params": {"learning_rate": 0.005, "max_steps": 200}}  # fmt: skip
    log_tail = "\n".join(
        f"step {i}: loss 1.{i:03d} lr 0.0005 grad_norm 0.42 tokens/s 954.2" for i in range(60)
    )
    states = [Status.SUCCEEDED] * 8 + [Status.FAILED, Status.CANCELLED]
    batch: list[Job] = []
    made = 0
    for i in range(jobs + jobs // 10):
        mine = i % 11 != 10  # one job in eleven belongs to the other project
        status = (
            states[i % len(states)]
            if i < jobs + jobs // 10 - 12
            else rng.choice([Status.QUEUED, Status.RUNNING])
        )
        created = now - timedelta(minutes=10 * (jobs + jobs // 10 - i))
        batch.append(Job(
            project=project if mine else other, created_by=user, name=f"job {i}", technique=rng.choice(["sft", "dpo", "rlvr"]),
            kind=Kind.TRAINING, spec=spec, labels={"model": "atelier-tiny", "dataset": "rows.jsonl"},
            status=status, step=200 if status == Status.SUCCEEDED else 120, max_steps=200,
            metrics=_metrics(20, rng), log_tail=log_tail, result={"train_loss": 0.4, "heldout_before": 0.3, "heldout_after": 0.9},
            outcome=Outcome.BETTER if status == Status.SUCCEEDED else Outcome.UNKNOWN,
            started_at=created, finished_at=created + timedelta(minutes=5) if status in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED) else None,
            position=i,
        ))  # fmt: skip
        if len(batch) == 1000:
            made += len(Job.objects.bulk_create(batch))
            batch = []
    made += len(Job.objects.bulk_create(batch))
    # auto_now_add stamped them all now: spread them over the past, as a year of use would.
    for job in Job.objects.only("pk", "position"):
        job.created_at = now - timedelta(minutes=10 * (jobs + jobs // 10 - job.position))
        batch.append(job)
    Job.objects.bulk_update(batch, ["created_at"], batch_size=1000)
    from django.db import connection

    with connection.cursor() as cursor:  # the planner's statistics, as a database in use has them
        cursor.execute("ANALYZE" if connection.vendor == "sqlite" else "VACUUM ANALYZE")

    # The built-in model, built once in the repository's var/ (as `make run` does) and linked in.
    from workers.training import tiny

    built = ROOT / "var" / "models" / "atelier-tiny"
    tiny.build(built)
    from django.conf import settings

    (Path(settings.DATA_DIR) / "models").mkdir(parents=True, exist_ok=True)
    (Path(settings.DATA_DIR) / "models" / "atelier-tiny").symlink_to(built)

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    p = project.pk
    assert (
        client.post(reverse("wizard-model", kwargs={"project_id": p}), {"source": "partial"}).status_code
        == 302
    )
    lines = "".join(
        json.dumps({"prompt": f"Reverse the words: w{i} x{i % 97} y{i % 13}", "completion": f"y{i % 13} x{i % 97} w{i}"}) + "\n"
        for i in range(rows)
    )  # fmt: skip
    upload = SimpleUploadedFile("rows.jsonl", lines.encode(), content_type="application/jsonl")
    response = client.post(
        reverse("wizard-data", kwargs={"project_id": p}),
        {"file": upload, "eval_choice": "auto", "go": "check"},
    )
    assert response.status_code == 302, response.content[:2000]
    job = Job.objects.filter(project=project, status=Status.SUCCEEDED).order_by("pk")[jobs // 2]
    pages = {
        "jobs list": reverse("job-list", kwargs={"project_id": p}),
        "dashboard": reverse("project-dashboard", kwargs={"project_id": p}),
        "job page": reverse("job-detail", kwargs={"project_id": p, "job_id": job.pk}),
        "data step": reverse("wizard-data", kwargs={"project_id": p}),
    }
    client.get(pages["dashboard"])  # a browser's cookies after its first page: session, CSRF, project
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())
    return {"client": client, "pages": pages, "cookie": cookie, "jobs": made,
            "project_jobs": Job.objects.filter(project=project).count()}  # fmt: skip


def queries(client: Any, url: str) -> dict[str, int]:
    """The SQL one GET of the page runs (after one warming GET), and how many of them write."""
    from django.db import connection

    seen: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    client.get(url)
    with connection.execute_wrapper(record):
        status = client.get(url).status_code
    assert status == 200, (url, status)
    writes = [q for q in seen if q.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]
    return {"queries": len(seen), "writes": len(writes)}


def web_commands() -> list[str]:
    """The web processes' commands, as `make run` starts them (the Procfile's web lines)."""
    from apps.launcher import procfile

    lines = [line for line in procfile().splitlines() if line.startswith("web")]
    return [line.split(":", 1)[1].strip() for line in lines]


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - our own server
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    raise TimeoutError(url)


def wrk(url: str, cookie: str, clients: int, seconds: int, script: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--timeout", "20s", "-s", str(script),
         "-H", f"Cookie: {cookie}", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = json.loads(out.stdout.strip().splitlines()[-1])
    found["requests_per_second"] = round(found["requests"] / found["seconds"], 1)
    if found["not_200"] or found["socket_errors"]:  # a redirect to the login page is fast, and not the page
        raise RuntimeError(
            f"{url}: {found['not_200']} answers were not 200, {found['socket_errors']} socket errors"
        )
    for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
        found[key] = round(found[key], 1)
    return found


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One database's run, in its own process (Django is set up once per process)."""
    data = Path(tempfile.mkdtemp(prefix="atelier-bench-web-"))
    url = f"sqlite:///{data / 'atelier.sqlite3'}" if args.db == "sqlite" else PG
    if args.db == "postgres":
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute("DROP DATABASE IF EXISTS atelier_bench_web WITH (FORCE)")
            c.execute("CREATE DATABASE atelier_bench_web")
    os.environ.update({"ATELIER_DATA_DIR": str(data), "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "apps.settings",
                       "ATELIER_PORT": str(PORT), "ATELIER_HOST": "127.0.0.1"})  # fmt: skip
    import django

    django.setup()
    t0 = time.monotonic()
    seeded = seed(args.jobs, args.rows)
    print(
        f"[{args.db}] seeded {seeded['jobs']} jobs ({seeded['project_jobs']} in the project) in {time.monotonic() - t0:.0f} s",
        flush=True,
    )
    counted = {name: queries(seeded["client"], url) for name, url in seeded["pages"].items()}
    from django.db import connections

    connections.close_all()
    commands = web_commands()
    log = (data / "web.log").open("w")
    webs = [
        subprocess.Popen(command, shell=True, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)  # noqa: S602 - our Procfile line
        for command in commands
    ]
    script = data / "report.lua"
    script.write_text(LUA)
    results: dict[str, Any] = {}
    try:
        base = f"http://127.0.0.1:{PORT}"
        wait_up(f"{base}/accounts/login/")
        for name, path in seeded["pages"].items():
            wrk(base + path, seeded["cookie"], args.clients, 3, script)  # warm every worker
            found = wrk(base + path, seeded["cookie"], args.clients, args.seconds, script)
            results[name] = found | counted[name]
            print(f"[{args.db}] {name}: {found}", flush=True)
    finally:
        for web in webs:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(timeout=30)
    return {"web_commands": [c.replace(sys.executable, "python") for c in commands], "jobs": seeded["jobs"],
            "project_jobs": seeded["project_jobs"], "pages": results}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=40_000, help="rows of the Data step's uploaded dataset")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--label", default="after", help="this run's name in web.json (e.g. before, after)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return 0
    run: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
                           "clients": args.clients, "seconds": args.seconds, "rows": args.rows, "databases": {}}  # fmt: skip
    for db in args.db.split(","):
        cmd = [sys.executable, __file__, "--child", "--db", db, "--jobs", str(args.jobs), "--rows", str(args.rows),
               "--clients", str(args.clients), "--seconds", str(args.seconds)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True)
        sys.stdout.write(out.stdout.replace("RESULT ", "", 0))
        if out.returncode:
            sys.stderr.write(out.stderr[-5000:])
            return out.returncode
        run["databases"][db] = json.loads(
            next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:]
        )
    print(
        f"\n{'database':10} {'page':10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>7} {'queries':>8} {'writes':>7}"
    )
    for db, found in run["databases"].items():
        for page, r in found["pages"].items():
            print(f"{db:10} {page:10} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['p99_ms']:8.1f} {r['requests_per_second']:7.1f} "
                  f"{r['queries']:8d} {r['writes']:7d}")  # fmt: skip
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.label] = run
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)} [{args.label}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
