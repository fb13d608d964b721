"""Project secrets: typed once on the project's settings page, stored encrypted, never shown again,
usable only by that project's jobs; the workers' variables only from the administrator's allow-list."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from apps.jobs.models import Job, Kind
from apps.jobs.services import job_create
from apps.projects.models import Membership, Role
from apps.projects.services import project_create
from apps.secrets.models import ProjectSecret
from apps.secrets.services import KeyUnavailable, key_choices, key_resolve, secret_save
from workers.training.keys import JUDGE_KEY_ENV, TEACHER_KEY_ENV

pytestmark = pytest.mark.django_db
KEY = "sk-live-7f3a9c1e5b2d4068"


def test_a_secret_is_stored_encrypted_and_never_shown_again(client, alice, alice_project):
    client.force_login(alice)
    url = reverse("project-settings", args=[alice_project.pk])
    response = client.post(url, {"name": "openai", "value": KEY}, follow=True)
    page = response.content.decode()
    assert "Secret “openai” saved" in page and "<code>openai</code>" in page and KEY not in page
    with connection.cursor() as cursor:
        cursor.execute("SELECT ciphertext FROM secrets_projectsecret")
        (stored,) = cursor.fetchone()
    assert KEY.encode() not in bytes(stored) and len(bytes(stored)) > len(KEY)
    assert key_resolve(project_id=alice_project.pk, ref="secret:openai") == KEY
    assert KEY not in client.get(url).content.decode()
    assert KEY not in repr(ProjectSecret.objects.get()) + str(ProjectSecret.objects.get())


def test_a_form_with_an_error_does_not_send_the_key_back(client, alice, alice_project):
    client.force_login(alice)
    response = client.post(
        reverse("project-settings", args=[alice_project.pk]), {"name": "no spaces", "value": KEY}
    )
    page = response.content.decode()
    assert response.status_code == 422 and "letters, digits" in page and KEY not in page
    assert not ProjectSecret.objects.exists()


def test_saving_a_name_again_replaces_the_key_and_deleting_removes_it(client, alice, alice_project):
    client.force_login(alice)
    secret = secret_save(project=alice_project, user=alice, name="openai", value="old")
    secret_save(project=alice_project, user=alice, name="openai", value="new")
    assert key_resolve(project_id=alice_project.pk, ref="secret:openai") == "new"
    client.post(reverse("secret-delete", args=[alice_project.pk, secret.pk]))
    assert not ProjectSecret.objects.exists()
    with pytest.raises(KeyUnavailable, match="no secret named “openai”"):
        key_resolve(project_id=alice_project.pk, ref="secret:openai")


def test_a_viewer_sees_the_names_but_cannot_add_or_delete_and_another_user_gets_404(
    client, alice, bob, alice_project
):
    secret = secret_save(project=alice_project, user=alice, name="openai", value=KEY)
    client.force_login(bob)
    settings_url = reverse("project-settings", args=[alice_project.pk])
    delete_url = reverse("secret-delete", args=[alice_project.pk, secret.pk])
    assert client.get(settings_url).status_code == 404
    assert client.post(delete_url).status_code == 404
    bobs = project_create(user=bob, name="Bob's")
    assert client.post(reverse("secret-delete", args=[bobs.pk, secret.pk])).status_code == 404
    Membership.objects.create(project=alice_project, user=bob, role=Role.VIEWER)
    page = client.get(settings_url).content.decode()
    assert "<code>openai</code>" in page and "Save secret" not in page
    client.post(settings_url, {"name": "mine", "value": "x"})
    assert client.post(delete_url).status_code == 403
    assert list(ProjectSecret.objects.values_list("name", flat=True)) == ["openai"]


def test_another_projects_jobs_and_forms_cannot_use_the_secret(client, alice, bob, alice_project):
    secret_save(project=alice_project, user=alice, name="openai", value=KEY)
    bobs = project_create(user=bob, name="Bob's")
    assert "secret:openai" in dict(key_choices(project=alice_project))
    assert "secret:openai" not in dict(key_choices(project=bobs))
    with pytest.raises(KeyUnavailable):
        key_resolve(project_id=bobs.pk, ref="secret:openai")
    client.force_login(bob)
    page = client.post(reverse("generation-new", args=[bobs.pk]), {
        "technique": "sft", "description": "Reverse words.", "rows": 3, "teacher": "url",
        "teacher_url": "https://api.example.com/v1", "teacher_model": "t", "teacher_key": "secret:openai",
    }).content.decode()  # fmt: skip
    assert "Select a valid choice" in page and not Job.objects.exists()
    # A spec written by hand in Bob's project, naming Alice's secret, gets no key: the runner fails it.
    from workers.runner import _job_keys, training_spec

    job = job_create(project=bobs, user=bob, name="g", kind=Kind.SYNTHESIS, auto_evaluate=False,
                     spec={"technique": "sft", "description": "d", "rows": 1, "stage": "topics",
                           "teacher": {"base_url": "https://api.example.com/v1", "model": "t", "key": "secret:openai"}})  # fmt: skip
    with pytest.raises(KeyUnavailable, match="no secret named"):
        _job_keys(job, training_spec(job))


def test_a_worker_variable_outside_the_allow_list_is_refused(
    client, alice, alice_project, settings, monkeypatch
):
    client.force_login(alice)
    monkeypatch.setenv("JUDGE_PROVIDER_KEY", "sk-provider")
    assert not any(ref.startswith("env:") for ref, _ in key_choices(project=alice_project))
    page = client.post(reverse("generation-new", args=[alice_project.pk]), {
        "technique": "sft", "description": "Reverse words.", "rows": 3, "teacher": "url",
        "teacher_url": "https://api.example.com/v1", "teacher_model": "t", "teacher_key": "env:PATH",
    }).content.decode()  # fmt: skip
    assert "Select a valid choice" in page and not Job.objects.exists()
    for name in ("PATH", "JUDGE_PROVIDER_KEY"):
        with pytest.raises(KeyUnavailable, match="ATELIER_WORKER_SECRET_ENV"):
            key_resolve(project_id=alice_project.pk, ref=f"env:{name}")
    settings.WORKER_SECRET_ENV = ["JUDGE_PROVIDER_KEY"]
    assert ("env:JUDGE_PROVIDER_KEY", "JUDGE_PROVIDER_KEY (the workers' environment)") in key_choices(
        project=alice_project
    )
    assert key_resolve(project_id=alice_project.pk, ref="env:JUDGE_PROVIDER_KEY") == "sk-provider"


def test_the_runner_puts_a_chosen_key_in_a_fixed_variable_and_never_in_the_spec(
    alice, alice_project, monkeypatch
):
    from workers.runner import _job_keys, training_env, training_spec

    secret_save(project=alice_project, user=alice, name="judge", value=KEY)
    rlaif = job_create(project=alice_project, user=alice, name="r", spec={
        "technique": "rlaif", "model": "m", "dataset": "d",
        "params": {"judge_url": "https://judge.example/v1", "judge_model": "j", "judge_key": "secret:judge",
                   "judge_api_key_env": "PATH"},  # a row from before secrets: its variable is dropped
    })  # fmt: skip
    spec = training_spec(rlaif)
    assert _job_keys(rlaif, spec) == {JUDGE_KEY_ENV: KEY}
    assert "judge_api_key_env" not in spec["params"] and KEY not in str(spec) and KEY not in str(rlaif.spec)
    assert ProjectSecret.objects.get().last_used_at is not None

    evaluation = job_create(project=alice_project, user=alice, name="e", kind=Kind.EVALUATION, auto_evaluate=False,
                            spec={"judge": {"base_url": "https://judge.example/v1", "model": "j", "key": "secret:judge",
                                            "api_key_env": "PATH"}})  # fmt: skip
    spec = training_spec(evaluation)
    assert (
        _job_keys(evaluation, spec) == {JUDGE_KEY_ENV: KEY} and spec["judge"]["api_key_env"] == JUDGE_KEY_ENV
    )
    assert (
        evaluation.spec["judge"]["api_key_env"] == "PATH"
    )  # the row is left as it was; only the spec changes

    url_teacher = job_create(project=alice_project, user=alice, name="g", kind=Kind.SYNTHESIS, auto_evaluate=False,
                             spec={"technique": "sft", "description": "d", "rows": 1, "stage": "topics",
                                   "teacher": {"base_url": "https://t.example/v1", "model": "t", "api_key_env": TEACHER_KEY_ENV}})  # fmt: skip
    spec = training_spec(url_teacher)
    # Naming the gateway key's variable in the row does not mint a gateway key for someone else's URL.
    assert _job_keys(url_teacher, spec) == {} and "api_key_env" not in spec["teacher"]
    from workers.runner import _run_key

    assert _run_key(url_teacher) == (None, {})

    monkeypatch.setenv(JUDGE_KEY_ENV, "the-workers-own-key")
    env = training_env()
    assert JUDGE_KEY_ENV not in env and TEACHER_KEY_ENV not in env
    assert env["ATELIER_OUTBOUND_ALLOW"]  # the policy its judge and teacher connect under
