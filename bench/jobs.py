"""The cost of the job queue: a training job launched through Atelier's services, Redis, the Celery training
worker and its subprocess, against the bare training CLI on the same spec.

In a fresh data folder (its own SQLite database and embedded Redis) it starts a real training worker, then
for each repeat runs the spec once with `python -m workers.training run` and once as a job (job_create,
then the worker claims, supervises and reports it). It reports the wall time of each (the job: from
job_create until the row says succeeded), their ratio (goal <= 1.03) and the time from launch to the
first logged step (goal <= 10 s on the 2-core development machine with the tiny model).

    python bench/jobs.py [--steps 40] [--repeats 2]

Prints a table and writes bench/results/jobs.json. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workers.training.folder import JobFolder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001, S110 - not ready yet
            pass
        time.sleep(0.1)
    raise TimeoutError(what)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="atelier-bench-"))
    os.environ.update({
        "ATELIER_DATA_DIR": str(data), "DATABASE_URL": f"sqlite:///{data / 'bench.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "apps.settings", "ATELIER_REDIS_PORT": "6391",
    })  # fmt: skip
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    from apps.jobs.models import Job, Status
    from apps.jobs.services import job_create
    from apps.projects.services import project_create
    from workers.training import tiny
    from workers.training.events import read_events

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("bench", password="bench-password-1")  # noqa: S106
    project = project_create(user=user, name="bench")
    models = ROOT / "var" / "models" / "atelier-tiny"
    tiny.build(models)

    logs = (data / "logs").open("w")
    py = sys.executable
    redis = subprocess.Popen([py, "-m", "apps.launcher", "redis"], cwd=ROOT, stdout=logs, stderr=logs)
    worker = subprocess.Popen(
        [py, "-m", "celery", "-A", "workers", "worker", "-Q", "train-cpu", "-c", "1", "-n", "bench@%h", "--loglevel", "WARNING"],
        cwd=ROOT, stdout=logs, stderr=logs,
    )  # fmt: skip
    try:
        from workers.celery import app

        _wait(lambda: app.control.inspect(timeout=0.5).ping(), 90, "the worker did not answer")
        spec = {
            "technique": "sft", "model": str(models / "partial"), "dataset": str(tiny.DEMO / "reverse" / "sft.jsonl"),
            "training": {"method": "lora", "max_steps": args.steps, "batch_size": 16, "save_steps": 10_000},
            "tracking": {"enabled": False},
        }  # fmt: skip
        rows = []
        for repeat in range(args.repeats):
            out = data / f"cli-{repeat}"
            spec_path = JobFolder(out).write_spec(spec)
            started = time.time()
            subprocess.run([py, "-m", "workers.training", "run", str(spec_path)], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # fmt: skip
            cli_wall = time.time() - started
            cli_first = (
                next(e["time"] for e in read_events(JobFolder(out).events) if e["event"] == "step") - started
            )

            started = time.time()
            job = job_create(project=project, user=user, name=f"bench {repeat}", spec=spec)
            _wait(lambda job=job: Job.objects.get(pk=job.pk).ended, 600, "the job did not end")
            job_wall = time.time() - started
            job.refresh_from_db()
            if job.status != Status.SUCCEEDED:  # a benchmark of a failed job means nothing
                raise RuntimeError(f"the job {job.status}: {job.error}")
            job_first = (
                next(e["time"] for e in read_events(job.files.events) if e["event"] == "step") - started
            )
            rows.append({"cli_seconds": round(cli_wall, 2), "job_seconds": round(job_wall, 2),
                         "cli_first_step_seconds": round(cli_first, 2), "job_first_step_seconds": round(job_first, 2)})  # fmt: skip
    finally:
        worker.terminate()
        worker.wait(30)
        redis.terminate()
        redis.wait(10)
    cli = statistics.median(r["cli_seconds"] for r in rows)
    job = statistics.median(r["job_seconds"] for r in rows)
    first = statistics.median(r["job_first_step_seconds"] for r in rows)
    result = {
        "machine": f"{os.cpu_count()} cores", "steps": args.steps, "repeats": rows,
        "median_cli_seconds": cli, "median_job_seconds": job, "ratio_job_to_cli": round(job / cli, 3),
        "median_launch_to_first_step_seconds": first,
        "goals": {"ratio_job_to_cli": 1.03, "launch_to_first_step_seconds": 10},
    }  # fmt: skip
    print(f"{'run':<8}{'CLI s':>8}{'job s':>8}{'CLI 1st step':>14}{'job 1st step':>14}")
    for i, r in enumerate(rows):
        print(
            f"{i:<8}{r['cli_seconds']:>8}{r['job_seconds']:>8}{r['cli_first_step_seconds']:>14}{r['job_first_step_seconds']:>14}"
        )
    print(
        f"job / CLI wall time: {result['ratio_job_to_cli']} (goal <= 1.03); launch to first step: {first} s (goal <= 10)"
    )
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "jobs.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
