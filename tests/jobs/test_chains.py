"""A chain SFT → DPO → RLVR through the real training worker, each stage deployed on the built-in engine
and asked through the gateway with the official openai client: at every stage the endpoint, the
automatic evaluation and plain transformers + PEFT on the saved artifact give the same greedy answers
on the held-out prompts. Each stage trains a few steps: this is about chaining, not learning."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.endpoints.services import api_key_create, endpoint_deploy, endpoint_undeploy
from apps.evaluations import selectors
from apps.jobs.models import Job, Kind, Status
from apps.jobs.services import job_create
from tests.conftest import LOGS
from tests.endpoints.conftest import client_for, wait_ready
from tests.harness import wait_for_job
from tests.training.test_chains import eval_prompts, plain_answers
from workers.training import tiny
from workers.training.graders import exact_match

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
REVERSE = tiny.DEMO / "reverse"
TOKENS = 24  # the evaluation's max_new_tokens (the spec's eval_max_new_tokens default)
ASKED = 8  # held-out prompts asked through the gateway (the evaluation and plain PEFT answer all 50)

STAGES: list[dict[str, Any]] = [
    {"technique": "sft", "dataset": "sft.jsonl", "training": {"max_steps": 20, "batch_size": 16}},
    {"technique": "dpo", "dataset": "dpo.jsonl", "training": {"max_steps": 8, "batch_size": 8}},
    {"technique": "rlvr", "dataset": "rlvr.jsonl", "training": {"max_steps": 4, "batch_size": 8},
     "params": {"graders": ["exact_match"], "num_generations": 4, "max_completion_length": 16}},
]  # fmt: skip


def _samples(evaluation: Job) -> dict[str, list[str]]:
    """Each model's answers in the evaluation's samples, in row order."""
    rows = [json.loads(line) for line in evaluation.files.samples.read_text().splitlines()]
    rows.sort(key=lambda r: r["row"])
    return {label: [r["outputs"][label]["text"].strip() for r in rows] for label in rows[0]["outputs"]}


def test_sft_dpo_rlvr_chain_answers_alike_on_the_endpoint_the_evaluation_and_plain_peft(
    alice, alice_project, tiny_model, celery_trainer, asgi_server, engine_supervisor
):
    _, key = api_key_create(project=alice_project, user=alice, name="chain")
    client = client_for(asgi_server, key)
    prompts = eval_prompts()
    model, parent = str(tiny_model / "partial"), None
    previous_answers: list[str] = []
    chain = ["atelier-tiny/partial"]
    for stage in STAGES:
        spec = {
            "technique": stage["technique"], "model": model, "dataset": str(REVERSE / stage["dataset"]),
            "eval_dataset": str(REVERSE / "eval.jsonl"), "params": stage.get("params", {}),
            "training": {"method": "lora", "save_steps": 10_000, **stage["training"]},
            "tracking": {"enabled": False},
        }  # fmt: skip
        job = wait_for_job(
            job_create(project=alice_project, user=alice, name=stage["technique"], spec=spec), 300
        )
        assert job.status == Status.SUCCEEDED, (job.error, job.log_tail[-2000:])
        adapter = Path(job.model_artifact or "")
        named = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
        # The first stage's adapter is on the partial model; every later one on its parent's merged model.
        assert named == (str(tiny_model / "partial") if parent is None else str(parent.output_dir / "merged"))

        plain = plain_answers(adapter, prompts, TOKENS)
        evaluation = wait_for_job(Job.objects.get(evaluates=job, kind=Kind.EVALUATION), 300)
        assert evaluation.status == Status.SUCCEEDED, (evaluation.error, evaluation.log_tail[-2000:])
        samples = _samples(evaluation)
        assert samples["customized"] == plain
        # One number: the trainer's before → after, the report's base → customized, and the share of
        # plain PEFT's answers that are right, on the same 50 held-out rows.
        answers = [row["answer"] for row in tiny.read_jsonl(REVERSE / "eval.jsonl")]
        plain_share = sum(exact_match(plain, answers)) / len(answers)
        report = selectors.report_for(evaluation)
        assert report is not None
        em = selectors.metric(report, "exact_match")
        assert em is not None
        assert job.result["heldout_rows"] == len(answers)
        assert job.result["heldout_after"] == em["values"]["customized"]["mean"] == plain_share
        assert job.result["heldout_before"] == em["values"]["base"]["mean"]
        if previous_answers:
            # The evaluation's "base" of a chained job is what it started from: the parent's model.
            assert samples["base"] == previous_answers

        endpoint = endpoint_deploy(project=alice_project, user=alice, job=job)
        if parent is not None:
            assert endpoint.base == str((parent.output_dir / "merged").resolve())
        wait_ready(endpoint.pk, 120)
        served = [
            (client.chat.completions.create(model=endpoint.name, messages=p, temperature=0, max_tokens=TOKENS)
             .choices[0].message.content or "").strip()
            for p in prompts[:ASKED]
        ]  # fmt: skip
        assert served == plain[:ASKED], stage["technique"]
        endpoint_undeploy(endpoint=endpoint, user=alice)  # its engine stops: one model in memory at a time
        chain.append(f"{stage['technique'].upper()} #{job.pk}")
        model, previous_answers, parent = str(adapter), plain, job

    # The last stage on vLLM's command line (tests/serving/vllm_stand_in records it, then serves vLLM's API
    # with the built-in engine): vLLM serves the parent's merged model and loads the adapter at run time.
    dpo = Job.objects.get(project=alice_project, technique="dpo")
    calls = LOGS / "vllm-calls.jsonl"
    calls.unlink(missing_ok=True)
    on_vllm = endpoint_deploy(project=alice_project, user=alice, model=str(adapter), name="chain-vllm",
                              engine_kind="vllm")  # fmt: skip
    wait_ready(on_vllm.pk, 120)
    argv = json.loads(calls.read_text().splitlines()[-1])["argv"]
    assert argv[:2] == ["serve", str((dpo.output_dir / "merged").resolve())] == ["serve", on_vllm.base]
    on_vllm_answers = [
        (client.chat.completions.create(model="chain-vllm", messages=p, temperature=0, max_tokens=TOKENS)
         .choices[0].message.content or "").strip()
        for p in prompts[:ASKED]
    ]  # fmt: skip
    assert on_vllm_answers == previous_answers[:ASKED]

    # The endpoint's page tells the chain, and whose merged model its base is.
    browser = Client()
    browser.force_login(alice)
    page = browser.get(reverse("endpoint-detail", args=[alice_project.pk, endpoint.pk])).content.decode()
    shown = re.sub(r"<[^>]+>", "", page.split('data-testid="model-chain">')[1].split("</span>")[0])
    assert shown == " → ".join(chain)
    assert f"the merged model of DPO #{dpo.pk}" in re.sub(r"<[^>]+>", "", page)
