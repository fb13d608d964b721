"""The built-in judge in the wizard's RLAIF step: chosen as the judge when the project has it deployed,
offered in one click beside the field when not (coming back with the step as it was typed), and a judge
endpoint whose model reads too little for the step's requests refused beside the field with the numbers.
Through Django's test client and the real database; the judge is never asked anything here, so the test
does not depend on what the built-in judge answers (tests/endpoints/builtin.py)."""

from __future__ import annotations

import html
import json

import pytest
from django.urls import reverse

from apps.endpoints.selectors import builtin_endpoint
from apps.endpoints.services import endpoint_deploy, endpoint_deploy_builtin
from apps.jobs.models import Draft
from tests.endpoints import builtin
from workers.training import judge, tiny
from workers.training.techniques.rlaif import RLAIFParams

pytestmark = pytest.mark.django_db


@pytest.fixture
def rlaif_step(client, alice, alice_project, tiny_model, settings):
    """The wizard at its technique step on the reverse task's prompts; (client, url of the step)."""
    settings.DATA_DIR = tiny_model.parent.parent
    builtin.helpers(tiny_model)
    client.force_login(alice)
    pid = alice_project.pk
    client.post(reverse("wizard-model", args=[pid]), {"source": "partial"})
    client.post(reverse("wizard-data", args=[pid]), {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "none", "go": "next"})  # fmt: skip
    return client, reverse("wizard-technique", args=[pid])


def _selected(page: str, endpoint_id: int) -> bool:
    return f'<option value="{endpoint_id}" selected>' in page


def test_the_deployed_built_in_judge_is_the_judge_unless_the_draft_chose_another(
    rlaif_step, alice, alice_project
):
    client, url = rlaif_step
    judge_endpoint = endpoint_deploy_builtin(project=alice_project, user=alice, variant="judge")
    page = client.get(url, {"technique": "rlaif"}).content.decode()
    assert _selected(page, judge_endpoint.pk) and 'data-testid="builtin-deploy-judge"' not in page
    response = client.post(
        url, {"technique": "rlaif", "t-method": "lora", "p-judge_endpoint": judge_endpoint.pk}
    )
    assert response.status_code == 302, html.unescape(response.content.decode())[-2000:]
    assert Draft.objects.get().data["params"]["judge_endpoint"] == str(judge_endpoint.pk)
    # A draft whose judge is a URL keeps it: preselecting the endpoint too would make two judges.
    draft = Draft.objects.get()
    draft.data["params"] = {"judge_url": "http://judge.example/v1", "judge_model": "big"}
    draft.save()
    page = client.get(url, {"technique": "rlaif"}).content.decode()
    assert not _selected(page, judge_endpoint.pk) and "http://judge.example/v1</textarea>" in page
    # RLVR has no judge to choose.
    assert "builtin-deploy-judge" not in client.get(url, {"technique": "rlvr"}).content.decode()


def test_deploying_the_judge_from_the_step_comes_back_with_it_chosen_and_nothing_typed_lost(
    rlaif_step, alice_project
):
    client, url = rlaif_step
    page = client.get(url, {"technique": "rlaif"}).content.decode()
    assert 'data-testid="builtin-deploy-judge"' in page and "Deploy the built-in judge" in page
    deploy = reverse("builtin-deploy", args=[alice_project.pk, "judge"])
    assert f'formaction="{deploy}?next={url}%3Ftechnique%3Drlaif"' in page
    # The button posts the whole step (its formaction), as a browser does.
    typed = {"technique": "rlaif", "t-method": "full", "t-max_steps": "12", "p-rubric": "Exactly the letters reversed.",
             "p-judge_endpoint": "", "p-max_completion_length": "20", "use": "p-judge_endpoint"}  # fmt: skip
    response = client.post(f"{deploy}?next={url}%3Ftechnique%3Drlaif", typed)
    assert response.status_code == 302 and response.url == f"{url}?technique=rlaif"
    judge_endpoint = builtin_endpoint(alice_project.pk, "judge")
    assert judge_endpoint is not None
    page = html.unescape(client.get(response.url).content.decode())
    assert _selected(page, judge_endpoint.pk) and "Exactly the letters reversed.</textarea>" in page
    assert 'name="t-max_steps" value="12"' in page and 'value="full" selected' in page
    assert 'name="p-max_completion_length" value="20"' in page
    assert "is deployed as atelier-tiny-judge and chosen below" in page
    assert 'data-testid="builtin-deploy-judge"' not in page
    # Kept for one visit only.
    assert "Exactly the letters reversed." not in client.get(url, {"technique": "rlaif"}).content.decode()


def _longest_score_request(tiny_model, completion_tokens: int) -> int:
    """The judge's longest score request on the reverse task's prompts, counted by transformers itself:
    the messages Judge._ask sends, with an answer of `completion_tokens` tokens still to come."""
    count = builtin.transformers_counter(tiny_model / "partial")
    rubric = RLAIFParams().rubric
    longest = 0
    for line in (tiny.DEMO / "reverse" / "rlvr.jsonl").read_text().splitlines():
        prompt = json.loads(line)["prompt"][-1]["content"]
        user = f"Rubric: {rubric}\n\nRequest: {prompt}\n\nAnswer: \n\nScore (0-10):"
        messages = [{"role": "system", "content": judge.SYSTEM}, {"role": "user", "content": user}]
        longest = max(longest, count(messages))
    return longest + completion_tokens


def test_a_judge_that_reads_too_little_is_refused_beside_the_field_with_the_numbers(
    rlaif_step, alice, alice_project, tiny_model, tmp_path
):
    client, url = rlaif_step
    small = endpoint_deploy(project=alice_project, user=alice, name="small-judge",
                            model=str(builtin.reads_at_most(tiny_model, tmp_path / "small", 300)))  # fmt: skip
    form = {
        "technique": "rlaif",
        "t-method": "lora",
        "p-judge_endpoint": small.pk,
        "p-max_completion_length": "200",
    }
    response = client.post(url, form)
    page = html.unescape(response.content.decode())
    expected = _longest_score_request(tiny_model, 200)
    assert response.status_code == 422 and expected + judge.SCORE_TOKENS > 300
    assert (
        f"The judge's longest request is {expected:,} tokens and it may answer with {judge.SCORE_TOKENS}; "
        f"the endpoint small-judge ({tmp_path / 'small'}) reads at most 300 tokens." in page
    )
    assert "Lower “Max completion length”, use shorter prompts, or choose a judge that reads more." in page
    assert page.index("longest request is") > page.index('name="p-judge_endpoint"')  # beside the field
    assert "technique" not in Draft.objects.get().data
    # The Try button says the same, rather than asking the judge 4 requests it cannot read.
    tried = html.unescape(client.post(reverse("wizard-try", args=[alice_project.pk]), form).content.decode())
    assert f"longest request is {expected:,} tokens" in tried
    # Answers of 16 tokens (the default) fit in the same judge: accepted.
    assert _longest_score_request(tiny_model, 16) + judge.SCORE_TOKENS <= 300
    assert client.post(url, {**form, "p-max_completion_length": "16"}).status_code == 302
