"""Generate data with the built-in teacher as a person does it here, with real parts only: the teacher
deployed in one click and served by the built-in engine, asked through the gateway with the run's key;
the topics it proposes, rows it writes and the pipeline checks; a person accepting the right rows and
rejecting the wrong ones (and any whose word is in the held-out file) in curation; the dataset saved;
and SFT on it, launched through the wizard's services with the automatic settings, checked from the
outside with plain transformers + PEFT on the demo's 50 held-out prompts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.urls import reverse

from apps.datasets.models import Dataset
from apps.jobs import wizard
from apps.jobs.models import Job, Kind, Status
from apps.jobs.services import job_create
from apps.synthetic.models import GeneratedRow
from tests.harness import wait_for_job
from tests.training.test_automatic import _as_posted, _exact_match, _load, _rows
from workers.training import builtin_judge, builtin_teacher, tiny

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
ROWS = 1000


def test_the_built_in_teacher_writes_a_dataset_that_sft_learns_from(
    client, alice, alice_project, tiny_model, built_in_teacher, celery_worker, celery_trainer
):
    teacher = built_in_teacher
    new = reverse("generation-new", args=[alice_project.pk])
    assert f'value="{teacher.pk}" selected' in client.get(new).content.decode()  # chosen once deployed
    response = client.post(new, {"technique": "sft", "description": "Reverse the letters of a word.", "rows": ROWS,
                                 "teacher": "endpoint", "teacher_endpoint": teacher.pk})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-2000:]
    root = wait_for_job(Job.objects.get(kind=Kind.SYNTHESIS), timeout=300)
    assert root.status == Status.SUCCEEDED, root.error

    # The topics it proposed, on the page, generated as they are.
    page = client.get(response.url).content.decode()
    # Sampled at the pipeline's temperature the teacher writes its usual tree, or (about one time in
    # ten) the same four lengths under one topic.
    assert re.search(
        r"(short words|words)\n- 3 letters\n- 4 letters\n(longer words\n)?- 5 letters\n- 6 letters", page
    ), page[-3000:]
    client.post(response.url, {"topics": "short words\n- 3 letters\n- 4 letters\nlonger words\n- 5 letters\n- 6 letters",
                               "rows": ROWS})  # fmt: skip
    run = wait_for_job(Job.objects.get(parent=root), timeout=600)
    assert run.status == Status.SUCCEEDED, run.error
    rows = list(GeneratedRow.objects.filter(job=run).order_by("index"))
    # All the rows asked for, and the pipeline's checks kept most of what the teacher wrote (4 rows a
    # request; the dropped ones are counted on the page).
    assert len(rows) == ROWS and len(rows) >= 0.6 * 4 * run.result["requests"], run.result

    # Curation: a person keeps the right rows and rejects the wrong ones and any held-out word.
    held = set(builtin_judge.held_out_words())
    right = [
        r
        for r in rows
        if builtin_teacher.correct("sft", r.data) and builtin_judge.word_of(r.data["prompt"]) not in held
    ]
    wrong = [r for r in rows if r not in right]
    assert len(right) >= 0.8 * len(rows) and wrong, (len(right), len(rows))
    curate = reverse("generation-rows", args=[alice_project.pk, run.pk])
    client.post(curate, {"row": [r.pk for r in right], "verdict": "accepted"})
    client.post(curate, {"row": [r.pk for r in wrong], "verdict": "rejected"})
    client.post(reverse("generation-save", args=[alice_project.pk, run.pk]), {"name": "reversals"})
    dataset = Dataset.objects.get(project=alice_project)
    assert dataset.rows == len(right) and dataset.checks["sft"]["ok"]

    # SFT on it from the partly trained model, every Technique setting as the page shows it.
    held_out = _rows(tiny.DEMO / "reverse" / "eval.jsonl")
    start = _exact_match(*_load(tiny_model / "partial"), held_out)
    job = _launch_on(alice_project, alice, dataset)
    job = wait_for_job(job, timeout=900)
    assert job.status == Status.SUCCEEDED, job.error or job.log_tail[-2000:]
    after = _exact_match(*_load(Path(str(job.model_artifact))), held_out)
    # Better than its start beyond the interval (the job's own verdict): with about 880 kept rows it went
    # 36% → 90%, 76% and 78% in three runs on an AMD EPYC. With 320 rows asked for (about 280 kept, 52
    # steps) it moved within the interval (36% → 44%, 36%, 34% on an Intel Xeon; 44%, 54% here): too few
    # rows for the automatic plan to be sure to improve, as with any dataset that small.
    assert job.outcome == "better" and after > start, (start, after, job.outcome_reason)
    assert (job.result["heldout_before"], job.result["heldout_after"]) == (start, after)


def _launch_on(project, user, dataset: Dataset) -> Job:
    draft = wizard.draft_for(project=project, user=user)
    wizard.draft_save(draft, **wizard.model_choose(project=project, user=user, source="partial"))
    source = wizard.dataset_source(project, f"dataset:{dataset.pk}")
    held_out = wizard.dataset_source(project, "demo:reverse/eval.jsonl")["path"]
    wizard.draft_save(draft, dataset_key=f"dataset:{dataset.pk}", dataset=source["path"], dataset_label=source["label"],
                      column_map={}, drop_bad=False, eval_choice="file", eval_dataset=held_out)  # fmt: skip
    params = wizard.params_form_class("sft")(_as_posted(wizard.params_form_class("sft"), "p"), prefix="p")
    training = wizard.TrainingForm(_as_posted(wizard.TrainingForm, "t"), prefix="t")
    assert params.is_valid() and training.is_valid(), (params.errors, training.errors)
    wizard.draft_save(draft, technique="sft", params=wizard.clean_params("sft", params),
                      training=training.cleaned_data, resilience=None)  # fmt: skip
    estimate = wizard.review(draft)
    spec = wizard.materialize(draft)
    assert not {"learning_rate", "max_steps", "epochs"} & set(spec["training"])
    assert json.loads(Path(spec["dataset"]).read_text().splitlines()[0])["prompt"].startswith("reverse: ")
    return job_create(project=project, user=user, name="sft on generated rows", spec=spec, estimate=estimate,
                      compute_class=estimate["estimate"]["compute_class"], auto_evaluate=False)  # fmt: skip
