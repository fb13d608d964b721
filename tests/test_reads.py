"""Reading a page changes nothing and costs the same however many jobs a project has (issue 20).

The first test walks every route the isolation sweep fills (tests/test_isolation.py: the resolver's own
list, so a new page is walked as soon as it exists) and GETs each as its project's owner, recording every
SQL statement: none may write. A write on a GET is a row lock taken on every page view (under SQLite, the
whole database's write lock: 20 people reading pages queued on one another). The others count the queries
of the jobs list and the dashboard with 3 and with 63 jobs: the same number.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from apps.jobs.models import Job, Outcome, Status
from apps.jobs.services import job_create
from tests.test_isolation import GLOBAL, TENANT, filled, world  # noqa: F401 - world is the fixture

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement run on the default connection inside the block (across its reconnections:
    each request closes it)."""
    seen: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen


def _writes(seen: list[str]) -> list[str]:
    return [sql for sql in seen if sql.lstrip().split(None, 1)[0].upper() in WRITES]


def test_no_page_writes_to_the_database_when_it_is_read(world, client):  # noqa: F811 - the fixture
    client.force_login(world.alice)
    problems, read = [], 0
    for route, kind, url in filled(world):
        if kind not in (TENANT, GLOBAL) or route.key in ("logout", "invitation-accept"):
            continue  # logging out is a write by nature; an invitation is for someone without an account
        with statements() as seen:
            response = client.get(url)
        if response.status_code == 405:
            continue  # a route that takes no GET
        read += 1
        if writes := _writes(seen):
            problems.append(
                f"GET {url} ({route.key}, {response.status_code}): " + "; ".join(w[:120] for w in writes)
            )
    assert read > 40, f"only {read} pages were read: the sweep's routes are no longer reached"
    assert not problems, "GETs that wrote to the database:\n" + "\n".join(problems)


def _jobs(project: Any, user: Any, n: int) -> None:
    for i in range(n):
        job = job_create(project=project, user=user, name=f"job {i}", auto_evaluate=False,
                         spec={"technique": "sft", "model": "base-model", "dataset": "rows.jsonl"})  # fmt: skip
        done = i % 3 != 0
        Job.objects.filter(pk=job.pk).update(
            status=Status.SUCCEEDED if done else Status.QUEUED, outcome=Outcome.BETTER if done else "",
            metrics=[{"step": s, "loss": 1.0 / s} for s in range(1, 50)], log_tail="step\n" * 200,
        )  # fmt: skip


def _count(client: Any, url: str) -> int:
    client.get(url)  # the first view of a page may fill caches
    with statements() as seen:
        assert client.get(url).status_code == 200
    return len(seen)


@pytest.mark.parametrize("page", ["job-list", "project-dashboard"])
def test_the_jobs_list_and_the_dashboard_make_the_same_queries_for_3_jobs_and_for_63(
    page, alice, alice_project, client
):
    client.force_login(alice)
    url = reverse(page, kwargs={"project_id": alice_project.pk})
    _jobs(alice_project, alice, 3)
    few = _count(client, url)
    _jobs(alice_project, alice, 60)  # three pages of the list; queued and ended ones on the dashboard
    many = _count(client, url)
    assert few == many, f"{page}: {few} queries with 3 jobs, {many} with 63"
    assert many <= 8, f"{page}: {many} queries"
    if page == "job-list":  # the third page reads its own 20 rows too
        assert _count(client, url + "?page=3") == many


def test_list_rows_leave_the_big_columns_in_the_database(alice, alice_project, client):
    """The jobs list reads its rows without the metric history, log tail, spec or result."""
    client.force_login(alice)
    _jobs(alice_project, alice, 2)
    with statements() as seen:
        assert client.get(reverse("job-list", kwargs={"project_id": alice_project.pk})).status_code == 200
    rows = [
        sql
        for sql in seen
        if "FROM" in sql and '"jobs_job"' in sql.split("FROM", 1)[1][:40] and "COUNT" not in sql
    ]
    assert rows, seen
    for column in ("metrics", "log_tail", "spec", "result", "guardrails", "artifacts"):
        assert all(f'"jobs_job"."{column}"' not in sql for sql in rows), (column, rows)


def test_the_jobs_list_counts_no_further_than_its_bound_and_says_so(
    alice, alice_project, client, monkeypatch
):
    from apps.core.paging import BoundedPaginator

    monkeypatch.setattr(BoundedPaginator, "bound", 40)
    client.force_login(alice)
    _jobs(alice_project, alice, 45)
    url = reverse("job-list", kwargs={"project_id": alice_project.pk})
    page = client.get(url).content.decode()
    assert "page 1 of 2 (the 40 newest jobs shown; filter or sort to reach the others)" in page
    with statements() as seen:
        client.get(url + "?page=2")
    counts = [sql for sql in seen if sql.upper().startswith("SELECT COUNT(") and '"jobs_job"' in sql]
    assert counts and all("LIMIT 41" in sql for sql in counts), counts
    queued = client.get(url + "?status=queued").content.decode()  # 15 of them: no bound reached
    assert "jobs shown" not in queued and queued.count('data-testid="job-state"') == 15


def test_pages_kept_in_the_cache_show_every_change_at_once(alice, bob, alice_project, client):
    """The jobs list, the dashboard and the header are rendered once and kept under what they show
    (apps/core/fragments.py): a job that moves on, a renamed project or another person never gets an
    earlier rendering."""
    from django.core.cache import cache

    from apps.projects.services import membership_add

    _jobs(alice_project, alice, 3)
    job = Job.objects.filter(project=alice_project).order_by("pk").first()
    assert job is not None and job.status == Status.QUEUED
    client.force_login(alice)
    jobs_url = reverse("job-list", kwargs={"project_id": alice_project.pk})
    dashboard = reverse("project-dashboard", kwargs={"project_id": alice_project.pk})
    cache.clear()
    for url in (jobs_url, dashboard):
        assert client.get(url).status_code == 200
    kept = " ".join(cache._cache)  # type: ignore[attr-defined]  # LocMemCache keeps a dict
    assert all(
        f"template.cache.{name}." in kept for name in ("jobs-head", "jobs-table", "dashboard", "header")
    )
    Job.objects.filter(pk=job.pk).update(status=Status.RUNNING, step=7, max_steps=20)  # no signal sent
    page = client.get(jobs_url).content.decode()
    assert "7/20" in page and page.count("badge-running") == 1
    assert "badge-running" in client.get(dashboard).content.decode()
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED, finished_at=timezone.now())
    assert "badge-running" not in client.get(jobs_url).content.decode()
    assert "badge-running" not in client.get(dashboard).content.decode()
    alice_project.name = "Renamed bot"
    alice_project.save()
    assert client.get(jobs_url).content.decode().count("Renamed bot") >= 2  # title and the switcher
    # Another person in the same project: their own name in the header, and a viewer's page has no
    # button to customize a model.
    membership_add(project=alice_project, actor=alice, username="bob", role="viewer")
    client.force_login(bob)
    page = client.get(jobs_url).content.decode()
    assert "<summary>bob</summary>" in page and "alice</summary>" not in page
    assert "Customize a model" not in page
    client.force_login(alice)
    assert "Customize a model" in client.get(jobs_url).content.decode()
