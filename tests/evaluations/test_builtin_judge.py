"""The built-in judge on the evaluation form: chosen as the AI judge when the project has it deployed,
one click away beside the field when not (the form comes back as it was typed), and a judge endpoint
that reads too little for the report's requests refused beside the field with the numbers. Through
Django's test client and the real database; nothing is asked of the judge (tests/endpoints/builtin.py)."""

from __future__ import annotations

import html
import json

import pytest
from django.urls import reverse

from apps.endpoints.selectors import builtin_endpoint
from apps.endpoints.services import endpoint_deploy, endpoint_deploy_builtin
from apps.jobs.models import Job, Kind
from tests.endpoints import builtin
from tests.evaluations.conftest import trained_job
from workers.training import judge, tiny
from workers.training.evaluation import JudgeSpec

pytestmark = pytest.mark.django_db


@pytest.fixture
def evaluations(client, alice, alice_project, tiny_model, settings):
    """(client, the evaluations page, a finished training job to evaluate)."""
    settings.DATA_DIR = tiny_model.parent.parent
    builtin.helpers(tiny_model)
    client.force_login(alice)
    return (
        client,
        reverse("evaluation-list", args=[alice_project.pk]),
        trained_job(alice_project, alice, tiny_model / "partial"),
    )


def test_the_deployed_built_in_judge_is_the_evaluations_judge(evaluations, alice, alice_project):
    client, url, training = evaluations
    page = client.get(url).content.decode()
    assert 'data-testid="builtin-deploy-judge"' in page
    judge_endpoint = endpoint_deploy_builtin(project=alice_project, user=alice, variant="judge")
    page = client.get(url).content.decode()
    assert (
        f'<option value="{judge_endpoint.pk}" selected>' in page
        and 'data-testid="builtin-deploy-judge"' not in page
    )
    form = {"candidate": training.pk, "baseline": "base", "dataset": "heldout", "graders": ["exact_match"],
            "judge_endpoint": judge_endpoint.pk, "judge_scores": "on", "max_rows": 10, "max_new_tokens": 8}  # fmt: skip
    assert client.post(url, form).status_code == 302
    assert Job.objects.get(kind=Kind.EVALUATION).spec["judge"]["endpoint"] == judge_endpoint.pk


def test_deploying_the_judge_from_the_form_comes_back_with_what_was_typed(evaluations, alice_project):
    client, url, training = evaluations
    deploy = reverse("builtin-deploy", args=[alice_project.pk, "judge"])
    typed = {"candidate": training.pk, "baseline": "base", "dataset": "heldout", "graders": ["exact_match", "contains"],
             "rubric": "The letters, reversed.", "judge_scores": "on", "max_rows": "33", "max_new_tokens": "12",
             "judge_endpoint": "", "use": "judge_endpoint"}  # fmt: skip
    response = client.post(f"{deploy}?next={url}", typed)
    assert response.url == url
    page = html.unescape(client.get(url).content.decode())
    judge_endpoint = builtin_endpoint(alice_project.pk, "judge")
    assert judge_endpoint is not None and f'<option value="{judge_endpoint.pk}" selected>' in page
    assert "The letters, reversed.</textarea>" in page and 'name="max_rows" value="33"' in page
    assert 'name="max_new_tokens" value="12"' in page and 'value="contains" id="id_graders_1" checked' in page
    assert (
        'name="judge_pairwise" id="id_judge_pairwise"' in page
        and 'name="judge_pairwise" id="id_judge_pairwise" checked' not in page
    )


def _longest(tiny_model, build) -> int:
    count = builtin.transformers_counter(tiny_model / "partial")
    longest = 0
    for line in (tiny.DEMO / "reverse" / "eval.jsonl").read_text().splitlines()[:200]:
        row = json.loads(line)
        longest = max(longest, count(build(row["prompt"][-1]["content"], row["answer"])))
    return longest


def test_a_judge_that_reads_too_little_for_the_report_is_refused_with_the_numbers(
    evaluations, alice, alice_project, tiny_model, tmp_path
):
    client, url, training = evaluations
    small = endpoint_deploy(project=alice_project, user=alice, name="small-judge",
                            model=str(builtin.reads_at_most(tiny_model, tmp_path / "small", 640)))  # fmt: skip
    rubric = JudgeSpec.rubric

    def compare(prompt, _answer):  # the messages Judge.compare sends, both answers still to come
        user = f"Rubric: {rubric}\n\nRequest: {prompt}\n\nAnswer A: \n\nAnswer B: \n\nWhich answer is better?"
        return [{"role": "system", "content": judge.PAIRWISE_SYSTEM}, {"role": "user", "content": user}]

    def review(prompt, answer):
        user = f"Rubric: {rubric}\n\nRequest: {prompt}\n\nReference answer: {answer}\n\nAnswer: \n\nScore (0-10):"
        return [{"role": "system", "content": judge.REVIEW_SYSTEM}, {"role": "user", "content": user}]

    form = {"candidate": training.pk, "baseline": "base", "dataset": "heldout", "graders": ["exact_match"],
            "judge_endpoint": small.pk, "judge_scores": "on", "judge_pairwise": "on", "max_rows": 200,
            "max_new_tokens": 100}  # fmt: skip
    response = client.post(url, form)
    page = html.unescape(response.content.decode())
    expected = _longest(tiny_model, compare) + 2 * 100
    assert response.status_code == 422 and expected + 256 > 640
    assert (
        f"The judge's longest request is {expected:,} tokens and it may answer with 256; the endpoint small-judge "
        f"({tmp_path / 'small'}) reads at most 640 tokens. (That request holds the longest prompt of the rows "
        "evaluated, two answers of up to 100 tokens each (pairwise).)" in page
    )
    assert not Job.objects.filter(kind=Kind.EVALUATION).exists()
    # Scores alone, with short answers, fit in the same judge: accepted.
    assert _longest(tiny_model, review) + 24 + 256 <= 640
    accepted = client.post(url, {**form, "judge_pairwise": "", "max_new_tokens": 24})
    assert accepted.status_code == 302 and Job.objects.filter(kind=Kind.EVALUATION).count() == 1
