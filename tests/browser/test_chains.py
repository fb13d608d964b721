"""A chained model's endpoint page in Chromium: the chain it was trained through, each job a link, and
whose merged model its base is (screenshot in test-artifacts/). The jobs are rows with real adapters
in their folders; the chain's training itself is tests/jobs/test_chains.py's."""

from __future__ import annotations

import json
import shutil

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.endpoints.services import endpoint_deploy
from apps.jobs.models import Job
from tests.conftest import login
from tests.evaluations.conftest import trained_job
from workers.training.models import merge_adapter

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _with_adapter(job: Job, adapter, base: str | None = None) -> Job:
    """The adapter in the job's folder, as training saves it; `base` as its adapter_config names it (what
    training from an earlier job's adapter writes: that job's merged model)."""
    own = job.output_dir / "adapter"
    shutil.copytree(adapter, own)
    if base is not None:
        config = json.loads((own / "adapter_config.json").read_text())
        (own / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base}))
    Job.objects.filter(pk=job.pk).update(artifacts={"adapter": str(own)})
    job.refresh_from_db()
    return job


def test_a_chained_endpoint_shows_its_chain_and_its_parents_merged_base(
    page, alice, alice_project, tiny_model, lora_adapter, artifacts_dir, redis_service
):
    sft = _with_adapter(trained_job(alice_project, alice, lora_adapter, base=str(tiny_model / "partial")),
                        lora_adapter)  # fmt: skip
    merged = merge_adapter(sft.model_artifact or "", sft.output_dir / "merged")
    dpo = trained_job(alice_project, alice, lora_adapter, base=sft.model_artifact or "", technique="dpo")
    dpo = _with_adapter(dpo, lora_adapter, base=str(merged))
    endpoint = endpoint_deploy(project=alice_project, user=alice, job=dpo)
    assert endpoint.base == str(merged.resolve())

    login(page, "alice")
    page.goto(reverse("endpoint-detail", args=[alice_project.pk, endpoint.pk]))
    chain = page.get_by_test_id("model-chain")
    expect(chain).to_have_text(f"atelier-tiny/partial → SFT #{sft.pk} → DPO #{dpo.pk}")
    expect(page.get_by_test_id("base-job")).to_have_text(f"(the merged model of SFT #{sft.pk})")
    expect(page.get_by_test_id("chained-export")).to_contain_text("take the merged model")
    page.screenshot(path=artifacts_dir / "endpoint-chain.png", full_page=True)
    chain.get_by_role("link", name=f"SFT #{sft.pk}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(sft.name)
    page.go_back()
    chain.get_by_role("link", name=f"DPO #{dpo.pk}").click()
    expect(page.get_by_test_id("model-chain")).to_have_text(
        f"atelier-tiny/partial → SFT #{sft.pk} → DPO #{dpo.pk}"
    )
