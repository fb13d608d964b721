"""The built-in judge and teacher on the model catalog: what each is for, and one click that deploys it,
or gives back the one the project already has (no duplicates); the button beside a form that deploys
it and comes back with what was typed; viewers refused. Through Django's test client and the real
database (the engines themselves are the supervisor's: tests/endpoints/test_supervisor.py)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.core.forms import KEPT_SESSION_KEY
from apps.endpoints.models import Endpoint
from apps.endpoints.selectors import builtin_endpoint
from apps.endpoints.services import endpoint_deploy, endpoint_undeploy
from apps.jobs import model_sources
from apps.projects.models import Role
from apps.projects.services import membership_add, project_create
from tests.endpoints import builtin

pytestmark = pytest.mark.django_db


@pytest.fixture
def helpers(tiny_model, settings):
    settings.DATA_DIR = tiny_model.parent.parent  # the test data folder, where the tiny models are
    return builtin.helpers(tiny_model)


def _deploy(client, project, variant: str):
    return client.post(reverse("model-deploy", args=[project.pk]), {"source": f"atelier-tiny/{variant}"})


def test_the_catalog_says_what_each_helper_is_for_and_deploys_it_once(client, alice, alice_project, helpers):
    client.force_login(alice)
    catalog = client.get(reverse("model-catalog", args=[alice_project.pk])).content.decode()
    assert "Built-in judge and teacher" in catalog
    assert (
        "Scores answers to the reverse demo task, for RLAIF and evaluation reports." in catalog
        and "Writes reverse-task datasets in Generate data." in catalog
    )
    assert "Deploy the built-in judge" in catalog and "Deploy the built-in teacher" in catalog
    assert "<td>2048</td>" in catalog  # the context, read from the models' config (it said 256)

    first = _deploy(client, alice_project, "judge")
    judge = Endpoint.objects.get()
    assert first.url == reverse("endpoint-detail", args=[alice_project.pk, judge.pk])
    assert (
        judge.base == str(helpers["judge"].resolve())
        and judge.adapter == ""
        and judge.name == "atelier-tiny-judge"
    )
    assert judge.label == "Built-in judge"
    again = _deploy(client, alice_project, "judge")  # a second click: the same endpoint back
    assert again.url == first.url and Endpoint.objects.count() == 1
    catalog = client.get(reverse("model-catalog", args=[alice_project.pk])).content.decode()
    assert "atelier-tiny-judge</a>" in catalog and "Deploy the built-in judge" not in catalog

    _deploy(client, alice_project, "teacher")
    teacher = Endpoint.objects.exclude(pk=judge.pk).get()
    assert teacher.base == str(helpers["teacher"].resolve()) and teacher.engine_id != judge.engine_id
    # Undeployed, the next click serves the same endpoint again (its name and usage kept), not a new one.
    endpoint_undeploy(endpoint=judge, user=alice)
    _deploy(client, alice_project, "judge")
    judge.refresh_from_db()
    assert judge.active and judge.status == "pending" and Endpoint.objects.count() == 2


def test_only_a_deployment_of_the_helper_in_this_project_counts(alice, alice_project, bob, helpers):
    elsewhere = project_create(user=bob, name="Bob's")
    endpoint_deploy(project=elsewhere, user=bob, model=str(helpers["judge"]), name="bobs-judge")
    endpoint_deploy(
        project=alice_project, user=alice, model=str(helpers["teacher"]), name="teacher-not-judge"
    )
    assert builtin_endpoint(alice_project.pk, "judge") is None
    # A folder spelled another way (a relative path, a symlink) is the same model.
    link = helpers["judge"].parent / "judge-link"
    link.unlink(missing_ok=True)
    link.symlink_to(helpers["judge"])
    try:
        mine = endpoint_deploy(project=alice_project, user=alice, model=str(link), name="through-a-link")
    finally:
        link.unlink()
    assert builtin_endpoint(alice_project.pk, "judge") == mine
    endpoint_undeploy(endpoint=mine, user=alice)
    assert builtin_endpoint(alice_project.pk, "judge") is None


def test_the_helpers_resolve_as_models_wherever_the_built_in_model_does(helpers):
    assert model_sources.typed_model("atelier-tiny/judge") == str(helpers["judge"])
    assert model_sources.typed_model("atelier-tiny/teacher") == str(helpers["teacher"])
    with pytest.raises(ValidationError, match="not a Hugging Face model id"):
        model_sources.typed_model("atelier-tiny/nonsense/x")


def test_the_button_beside_a_form_deploys_and_goes_back_with_what_was_typed(
    client, alice, alice_project, helpers
):
    client.force_login(alice)
    page = reverse("generation-new", args=[alice_project.pk])
    response = client.post(
        reverse("builtin-deploy", args=[alice_project.pk, "teacher"]) + f"?next={page}?technique=rlvr",
        {
            "description": "Add two numbers.",
            "teacher_endpoint": "",
            "use": "teacher_endpoint",
            "rows": "7",
            "judge_new_key": "sk-typed-secret",
            "seeds": "x" * 70_000,
        },
    )
    teacher = builtin_endpoint(alice_project.pk, "teacher")
    assert teacher is not None and response.url == f"{page}?technique=rlvr"
    kept = client.session[KEPT_SESSION_KEY]
    assert kept["path"] == page and kept["use"] == "teacher_endpoint"
    # A typed key is a secret, and pasted megabytes are no session's: neither is kept.
    assert "sk-typed-secret" not in str(kept) and "seeds" not in kept["data"]
    assert kept["data"] == {
        "description": ["Add two numbers."],
        "teacher_endpoint": [str(teacher.pk)],
        "rows": ["7"],
    }
    # Twice: still one teacher.
    client.post(
        reverse("builtin-deploy", args=[alice_project.pk, "teacher"]) + f"?next={page}",
        {"use": "teacher_endpoint"},
    )
    assert Endpoint.objects.count() == 1


@pytest.mark.parametrize(
    "next_url", ["https://elsewhere.example/steal", "//elsewhere.example/x", "javascript:alert(1)", ""]
)
def test_a_next_outside_the_site_goes_to_the_catalog_instead(client, alice, alice_project, helpers, next_url):
    client.force_login(alice)
    response = client.post(reverse("builtin-deploy", args=[alice_project.pk, "judge"]), {"next": next_url})
    assert response.url == reverse("model-catalog", args=[alice_project.pk])
    assert Endpoint.objects.count() == 1


def test_viewers_cannot_deploy_a_helper_and_there_is_no_other_variant(
    client, alice, bob, alice_project, helpers
):
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.VIEWER)
    client.force_login(bob)
    assert _deploy(client, alice_project, "judge").status_code == 403
    assert client.post(reverse("builtin-deploy", args=[alice_project.pk, "teacher"])).status_code == 403
    catalog = client.get(reverse("model-catalog", args=[alice_project.pk])).content.decode()
    assert "Built-in judge and teacher" in catalog and "Deploy the built-in judge" not in catalog
    assert not Endpoint.objects.exists()
    client.force_login(alice)
    assert client.post(reverse("builtin-deploy", args=[alice_project.pk, "partial"])).status_code == 404
    assert not Endpoint.objects.exists()
