"""The review step: its plan is the run's plan (the same rows, the same function), its time has a
range, and its values read as people write them."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.jobs.models import Job
from tests.jobs.test_wizard import wizard  # noqa: F401 - the fixture
from workers.training.spec import JobSpec
from workers.training.train import estimate_spec

pytestmark = pytest.mark.django_db


def test_the_review_plans_the_steps_the_launched_run_plans_on_the_rows_it_trains_on(wizard):  # noqa: F811
    client, url, _ = wizard
    client.post(url("model"), {"source": "partial"})
    # The default: 10% held out automatically. The review used to plan on all 4,100 rows (769 steps)
    # while the run trained on the 3,690 left after the split (692 steps: three epochs of 16).
    client.post(url("data"), {"dataset": "demo:reverse/sft.jsonl", "eval_choice": "auto", "go": "next"})
    technique = client.get(url("technique")).content.decode()
    assert 'placeholder="automatic: 692"' in technique
    assert client.post(url("technique"), {"technique": "sft", "t-method": "lora"}).status_code == 302
    review = client.get(url("review")).content.decode()
    assert "692 steps" in review and "3690 training rows" in review and "769 steps" not in review
    time = re.search(r'data-testid="estimate-time">about ([^<]+)<', review)
    assert time and re.fullmatch(r"\d+ (s|min) \(\d+ (s|min) to \d+ (s|min)\) ", time.group(1)), time
    client.post(url("review"), {"name": "planned"})
    job = Job.objects.get()
    planned = estimate_spec(JobSpec.from_dict(job.spec))
    assert planned["hparams"]["max_steps"] == job.estimate["hparams"]["max_steps"] == 692
    assert planned["rows"] == 3690 and planned["estimate"]["seconds"] == job.estimate["estimate"]["seconds"]
    low, mid, high = (job.estimate["estimate"][k] for k in ("seconds_low", "seconds", "seconds_high"))
    assert low < mid < high


def _cell(page: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}">(.*?)</td>', page, re.S)
    assert found, testid
    return found.group(1)


def test_review_values_read_as_people_write_them(wizard):  # noqa: F811
    client, url, _ = wizard
    client.post(url("model"), {"source": "partial"})
    client.post(url("data"), {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "none", "go": "next"})
    response = client.post(url("technique"), {
        "technique": "rlvr", "t-method": "lora", "t-learning_rate": "0.0029999999999999996", "t-max_steps": "10",
        "p-graders": ["exact_match", "contains"], "p-num_generations": "4",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-2000:]
    review = client.get(url("review")).content.decode()
    technique = _cell(review, "review-technique")
    assert "graders Exact match, Contains" in technique and "[" not in technique
    hparams = _cell(review, "review-hparams")
    assert "learning rate 3e-3" in hparams and "LoRA · 10 steps" in hparams
    # Ten steps read a sample of the prompts (train.rows_read): the review says how many of them.
    read = re.search(r"reads (\d+) of the (\d+) training rows \(a sample: its steps read no more\)", hparams)
    assert read and 0 < int(read.group(1)) < int(read.group(2)), hparams
    assert "0.0029999999999999996" not in review
    assert reverse("wizard-review", kwargs={"project_id": wizard[2].pk}) in response["Location"]
