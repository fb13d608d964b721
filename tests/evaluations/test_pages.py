"""The report page, its sample browser, the exports, the job page's before → after, the form for a new
evaluation, and the reward-hacking warning, through Django's test client on a real report."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.urls import reverse

from apps.evaluations import selectors, services
from apps.jobs.models import Job, Kind
from apps.projects.models import Role
from apps.projects.services import membership_add
from tests.evaluations.conftest import evaluation_with_report, trained_job
from workers.training.folder import JobFolder

pytestmark = pytest.mark.django_db


def _url(name, job, *more):
    return reverse(name, args=[job.project_id, job.pk, *more])


def test_the_report_page_shows_the_headline_with_intervals_and_the_improved_samples(client, alice, reported):
    client.force_login(alice)
    page = client.get(_url("evaluation-report", reported)).content.decode()
    assert 'data-testid="value-exact_match-base">0.0%' in page
    after = re.search(r'data-testid="value-exact_match-customized">([\d.]+)%', page)
    assert after and float(after.group(1)) >= 90
    assert re.search(r'data-testid="delta-exact_match-customized">\+\d', page)
    assert "95% bootstrap interval" in page and "Pairwise judge" in page and "Orders disagreed" in page
    improved = client.get(
        _url("evaluation-report", reported), {"part": "samples", "show": "improved"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert improved.count('data-testid="sample"') == 20 and 'data-change="improved"' in improved
    assert "regressed" not in re.findall(r'data-change="(\w+)"', improved)
    searched = client.get(
        _url("evaluation-report", reported), {"part": "samples", "q": "s i m p l y"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert searched.count('data-testid="sample"') == 1 and "y l p m i s" in searched
    worst = client.get(
        _url("evaluation-report", reported), {"part": "samples", "show": "worst"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert worst.count('data-testid="sample"') == 20


def test_the_training_jobs_page_shows_before_and_after_with_intervals(client, alice, reported):
    client.force_login(alice)
    page = client.get(_url("job-detail", reported.evaluates)).content.decode()
    found = re.search(r'data-testid="before-after">(.*?)</p>', page, re.DOTALL)
    assert found is not None
    shown = found.group(1)
    assert "Exact match" in shown and "base <strong>0.0%</strong>" in shown and "customized <strong>" in shown
    assert _url("evaluation-report", reported) in page


def test_exports_hold_the_same_numbers_as_json_lines_csv_and_one_self_contained_html_file(
    client, alice, reported
):
    client.force_login(alice)
    jsonl = client.get(_url("evaluation-export", reported, "jsonl"))
    rows = [json.loads(line) for line in jsonl.content.decode().splitlines()]
    assert len(rows) == 50 and rows[0]["outputs"]["customized"]["text"]
    table = list(
        csv.DictReader(io.StringIO(client.get(_url("evaluation-export", reported, "csv")).content.decode()))
    )
    assert len(table) == 50 and {
        "prompt",
        "reference",
        "customized: answer",
        "customized: exact_match",
        "customized: pairwise",
    } <= set(table[0])
    html = client.get(_url("evaluation-export", reported, "html"))
    assert html["Content-Disposition"].endswith('.html"')
    body = html.content.decode()
    page = client.get(_url("evaluation-report", reported)).content.decode()
    numbers = re.findall(r'data-testid="(?:value|delta)-[\w-]+">([^<]+)<', page)
    assert numbers and numbers == re.findall(r'data-testid="(?:value|delta)-[\w-]+">([^<]+)<', body)
    # Nothing to fetch: no scripts, stylesheets, images or frames from anywhere.
    assert not re.search(r"<(script|link|img|iframe)\b", body) and "url(" not in body
    assert body.count('data-testid="sample"') == 50


def test_another_projects_evaluation_is_a_404_and_a_training_job_is_no_report(client, alice, reported, bob):
    client.force_login(bob)
    for url in (_url("evaluation-report", reported), _url("evaluation-export", reported, "html")):
        assert client.get(url).status_code == 404
    client.force_login(alice)
    assert client.get(_url("evaluation-report", reported.evaluates)).status_code == 404
    assert client.get(_url("evaluation-export", reported, "pdf")).status_code == 404


def test_the_form_queues_an_evaluation_with_the_chosen_graders_and_judge(
    client, alice, alice_project, full_sft
):
    training = trained_job(alice_project, alice, full_sft[0])
    client.force_login(alice)
    url = reverse("evaluation-list", args=[alice_project.pk])
    assert "New evaluation" in client.get(url).content.decode()
    bad = client.post(url, {"candidate": training.pk, "baseline": "base", "dataset": "heldout", "graders": ["regex"],
                            "judge_url": "http://127.0.0.1:9/v1", "max_rows": 10, "max_new_tokens": 8})  # fmt: skip
    assert bad.status_code == 422
    text = bad.content.decode()
    assert "The regex grader needs this." in text and "A judge needs both its URL and its model name." in text
    good = client.post(url, {"candidate": training.pk, "baseline": "base", "dataset": "heldout", "graders": ["exact_match", "regex"],
                             "regex_pattern": "[a-z ]+", "judge_url": "http://127.0.0.1:9/v1", "judge_model": "j",
                             "judge_pairwise": "on", "text_metrics": "on", "max_rows": 10, "max_new_tokens": 8})  # fmt: skip
    evaluation = Job.objects.get(kind=Kind.EVALUATION)
    assert good.status_code == 302 and good["Location"] == _url("evaluation-report", evaluation)
    spec = evaluation.spec
    assert [m["label"] for m in spec["models"]] == ["base", "customized"] and spec["models"][1][
        "model"
    ] == str(full_sft[0])
    assert spec["graders"] == ["exact_match", "regex"] and spec["grader_options"] == {
        "regex": {"pattern": "[a-z ]+"}
    }
    assert spec["judge"]["pairwise"] is True and spec["judge"]["scores"] is False and spec["max_rows"] == 10
    assert evaluation.evaluates == training and evaluation.queue == training.queue


def test_a_viewer_reads_reports_but_cannot_start_an_evaluation(client, alice, alice_project, bob, reported):
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.VIEWER)
    client.force_login(bob)
    assert client.get(_url("evaluation-report", reported)).status_code == 200
    url = reverse("evaluation-list", args=[alice_project.pk])
    assert "New evaluation" not in client.get(url).content.decode()
    refused = client.post(url, {"candidate": reported.evaluates.pk})
    assert refused.status_code == 403 and "Viewers can look but not change" in refused.content.decode()


def test_automatic_evaluation_is_queued_first_for_a_succeeded_job_unless_switched_off(
    alice, alice_project, full_sft
):
    training = trained_job(alice_project, alice, full_sft[0])
    assert services.evaluation_after_training(training) is None  # auto_evaluate=False here
    Job.objects.filter(pk=training.pk).update(auto_evaluate=True)
    training.refresh_from_db()
    evaluation = services.evaluation_after_training(training)
    assert evaluation is not None and evaluation.kind == Kind.EVALUATION and evaluation.evaluates == training
    assert evaluation.position < training.position
    rlaif = trained_job(alice_project, alice, full_sft[0], technique="rlaif")
    rlaif.spec["params"] = {"judge_url": "http://judge/v1", "judge_model": "j", "rubric": "r"}
    spec = services.spec_for_job(rlaif)
    assert spec["graders"] == [] and spec["judge"] == {
        "base_url": "http://judge/v1",
        "model": "j",
        "rubric": "r",
    }


def test_reward_hacking_is_flagged_when_the_trainers_reward_rose_and_held_out_exact_match_fell(
    client, alice, alice_project, evaluated, tmp_path, full_sft
):
    # A real report turned around: the fine-tuned model as the baseline and the base as the candidate, so
    # held-out exact match fell; the training job's logged reward rose.
    report = json.loads(JobFolder(evaluated).report.read_text())
    for m in report["metrics"]:
        m["values"] = {"base": m["values"].get("customized"), "customized": m["values"].get("base")}
        m["deltas"] = {
            "base": None,
            "customized": {
                k: -v if k in ("mean", "low", "high") else v
                for k, v in (
                    m["deltas"].get("customized") or {"mean": 0, "low": 0, "high": 0, "n": 0}
                ).items()
            },
        }
        lo, hi = -m["deltas"]["customized"]["high"], -m["deltas"]["customized"]["low"]
        m["deltas"]["customized"]["low"], m["deltas"]["customized"]["high"] = lo, hi
    folder = tmp_path / "turned"
    folder.mkdir()
    JobFolder(folder).report.write_text(json.dumps(report))
    JobFolder(folder).samples.write_text(JobFolder(evaluated).samples.read_text())
    rising = [{"step": s, "reward": 0.2 + s / 100} for s in range(10, 110, 10)]
    training = trained_job(alice_project, alice, full_sft[0], technique="rlvr", metrics=rising)
    evaluation = evaluation_with_report(alice_project, alice, training, folder)
    flag = selectors.reward_hacking(training, selectors.report_for(evaluation))
    assert flag is not None and flag.signal == "reward" and flag.base >= 0.9 and flag.customized <= 0.05
    client.force_login(alice)
    for url in (_url("job-detail", training), _url("evaluation-report", evaluation)):
        assert "Possible reward hacking" in client.get(url).content.decode(), url
    flat = trained_job(
        alice_project,
        alice,
        full_sft[0],
        technique="rlvr",
        metrics=[{"step": s, "reward": 0.5} for s in range(10)],
    )
    assert selectors.reward_hacking(flat, selectors.report_for(evaluation)) is None


def test_a_running_evaluation_polls_its_progress_and_reloads_the_page_when_done(
    client, alice, alice_project, reported
):
    from apps.jobs.models import Status

    client.force_login(alice)
    Job.objects.filter(pk=reported.pk).update(status=Status.RUNNING, step=30, max_steps=100)
    page = client.get(_url("evaluation-report", reported)).content.decode()
    assert "Evaluating: 30 of 100 answers generated" in page and 'hx-trigger="every 2s"' in page
    assert "Export HTML" not in page  # no report yet while it runs
    Job.objects.filter(pk=reported.pk).update(status=Status.SUCCEEDED)
    done = client.get(_url("evaluation-report", reported), HTTP_HX_REQUEST="true")
    assert done["HX-Refresh"] == "true"


def test_an_evaluation_jobs_own_page_opens_and_links_to_its_report(client, alice, reported):
    """An evaluation's spec has no `model` (it has `models`): the job page must not look it up."""
    client.force_login(alice)
    page = client.get(_url("job-detail", reported)).content.decode()
    assert "base vs customized" in page and _url("evaluation-report", reported) in page


def test_the_evaluation_form_refuses_a_python_grader_where_the_sandbox_is_unsafe(
    client, alice, alice_project, tiny_model, monkeypatch
):
    from workers.training.graders.sandbox import SANDBOX_UID_ENV, sandbox_state

    training = trained_job(alice_project, alice, tiny_model / "partial")
    client.force_login(alice)
    url = reverse("evaluation-list", args=[alice_project.pk])
    monkeypatch.setenv(SANDBOX_UID_ENV, "0")
    sandbox_state.cache_clear()
    try:
        assert "Python graders are turned off on this server" in client.get(url).content.decode()
        response = client.post(url, {"candidate": training.pk, "baseline": "base", "dataset": "heldout",
                                     "graders": ["python"], "python_code": "def grade(completion):\n    return 1.0\n",
                                     "max_rows": 10, "max_new_tokens": 8})  # fmt: skip
        assert response.status_code == 422
        assert "must be the number of an unprivileged user" in response.content.decode()
        assert not Job.objects.filter(kind=Kind.EVALUATION).exists()
    finally:
        monkeypatch.delenv(SANDBOX_UID_ENV)
        sandbox_state.cache_clear()
