"""The isolation sweep: every URL pattern the resolver knows, filled with alice's objects, requested by
bob (a member of another project only), by a viewer of alice's project, and by nobody.

The list of routes comes from `django.urls.get_resolver()`, never from this file: a new route is swept
as soon as it exists, and a route that no filler below can fill fails the sweep with the name of the
filler to add. Each route's filler says what kind of route it is (one of alice's project's, a global
page, the admin's, the gateway's) and gives one or more sets of URL arguments, all naming alice's objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from apps.accounts.services import invitation_create
from apps.core.models import ServicePing
from apps.datasets.models import Dataset
from apps.endpoints.models import Endpoint
from apps.endpoints.services import api_key_create
from apps.jobs.models import Draft, Job, Kind, Status
from apps.jobs.services import job_create
from apps.projects.models import Membership, Role
from apps.projects.services import membership_add, project_create
from apps.secrets.services import secret_save
from apps.synthetic.models import GeneratedRow, Verdict
from tests.factories import UserFactory
from workers.training import tiny

pytestmark = pytest.mark.django_db

# Words that only alice's objects contain: none may appear in anything bob is answered.
SECRET = "zanzibar"

# Route kinds. TENANT: a page or action on one of alice's project's objects (bob: 404). GLOBAL: a page of
# no project (login, health, the project list: bob gets his own, never alice's). STAFF: administrators
# only (bob, not staff: sent to a login page). GATEWAY: /v1, bearer keys only (bob's session: the
# gateway's own 401).
# MLFLOW: the proxy to the tracking server, whose every route tests/core/test_mlflow_proxy.py sweeps
# with the real server and runs in two projects (here: nobody logged in reaches none of it).
TENANT, GLOBAL, STAFF, GATEWAY, MLFLOW = "tenant", "global", "staff", "gateway", "mlflow"


@dataclass
class World:
    alice: Any
    bob: Any
    viewer: Any
    project: Any
    bob_project: Any
    training: Job
    evaluation: Job
    generation: Job
    generation_rows: Job
    row: GeneratedRow
    dataset: Dataset
    endpoint: Endpoint
    api_key: Any
    invitation: Any
    ping: ServicePing
    membership: Membership
    secret: Any
    ids: dict[str, int] = field(default_factory=dict)


def _artifact_folder(job: Job) -> Path:
    """The files a finished LoRA job leaves: an adapter folder of safetensors and configs."""
    folder = job.output_dir / "adapter"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "base", "r": 8}))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    job.files.events.write_text(json.dumps({"event": "done", "note": SECRET}) + "\n")
    return folder


def _finish(job: Job, **fields: Any) -> Job:
    Job.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now(), **fields)
    job.refresh_from_db()
    return job


def _report(evaluation: Job) -> None:
    """A small report and its samples, in the shape the evaluation layer writes."""
    evaluation.output_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "models": [{"label": "base", "evaluated": True}, {"label": "customized", "evaluated": True}],
        "baseline": "base", "primary": None, "metrics": [], "rows": 1,
    }  # fmt: skip
    evaluation.files.report.write_text(json.dumps(report))
    sample = {"row": 0, "prompt": f"{SECRET} prompt", "reference": "r",
              "outputs": {"base": {"text": f"{SECRET} answer", "scores": {}}}}  # fmt: skip
    evaluation.files.samples.write_text(json.dumps(sample) + "\n")


def _user(username: str, **fields: Any) -> User:
    return cast(User, UserFactory(username=username, **fields))


@pytest.fixture
def world(db) -> World:
    alice, bob, viewer = _user("alice"), _user("bob"), _user("vera")
    staff = _user("root", is_staff=True)
    project = project_create(user=alice, name=f"{SECRET} support", description=f"{SECRET} tickets")
    bob_project = project_create(user=bob, name="Bob's own")
    membership_add(project=project, actor=alice, username="vera", role=Role.VIEWER)
    sft = str(tiny.DEMO / "reverse" / "sft.jsonl")
    training = job_create(project=project, user=alice, name=f"{SECRET} sft", auto_evaluate=False,
                          spec={"technique": "sft", "model": "base-model", "dataset": sft})  # fmt: skip
    training = _finish(training, step=10, max_steps=10, metrics=[{"step": 1, "loss": 1.0}])
    adapter = _artifact_folder(training)
    training = _finish(training, artifacts={"adapter": str(adapter)})
    evaluation = job_create(project=project, user=alice, name=f"{SECRET} evaluation", kind=Kind.EVALUATION,
                            spec={"kind": "evaluation", "models": []}, evaluates=training)  # fmt: skip
    evaluation = _finish(evaluation)
    _report(evaluation)
    teacher = {"base_url": "https://teacher.example/v1", "model": "t"}
    generation = job_create(project=project, user=alice, name=f"{SECRET} generation", kind=Kind.SYNTHESIS,
                            auto_evaluate=False, spec={"technique": "sft", "description": SECRET, "rows": 2,
                                                       "teacher": teacher, "stage": "topics"})  # fmt: skip
    generation = _finish(generation)
    rows_job = job_create(project=project, user=alice, name=f"{SECRET} rows", kind=Kind.SYNTHESIS, parent=generation,
                          auto_evaluate=False, spec={**generation.spec, "stage": "all", "topics": [{"name": "t", "subtopics": []}]})  # fmt: skip
    rows_job = _finish(rows_job)
    row = GeneratedRow.objects.create(job=rows_job, index=0, topic="t", data={"prompt": SECRET, "completion": "c"},
                                      original={"prompt": SECRET, "completion": "c"}, verdict=Verdict.ACCEPTED)  # fmt: skip
    folder = Path(settings.DATA_DIR) / "projects" / str(project.pk) / "datasets" / "sweep"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.jsonl").write_text(json.dumps({"prompt": SECRET, "completion": "c"}) + "\n")
    dataset = Dataset.objects.create(project=project, created_by=alice, name=f"{SECRET}.jsonl",
                                     path=str(folder / "data.jsonl"), rows=1, columns=["prompt", "completion"])  # fmt: skip
    endpoint = Endpoint.objects.create(project=project, created_by=alice, name=f"{SECRET}-endpoint", job=training,
                                       label=SECRET, base="base-model", adapter=str(adapter))  # fmt: skip
    api_key, _ = api_key_create(project=project, user=alice, name=f"{SECRET} key")
    invitation, _ = invitation_create(actor=staff, email=f"{SECRET}@example.com", project=project)
    ping = ServicePing.objects.create(requested_by=alice)
    Draft.objects.create(project=project, user=alice, data={"model": SECRET})
    secret = secret_save(project=project, user=alice, name=f"{SECRET}-judge", value=f"sk-{SECRET}")
    return World(alice=alice, bob=bob, viewer=viewer, project=project, bob_project=bob_project,
                 training=training, evaluation=evaluation, generation=generation, generation_rows=rows_job,
                 row=row, dataset=dataset, endpoint=endpoint, api_key=api_key, invitation=invitation, ping=ping,
                 membership=Membership.objects.get(project=project, user=alice), secret=secret)  # fmt: skip


# Fillers ---------------------------------------------------------------------------------------------
# route → (kind, a function of the world giving the URL arguments: one dict, or a list for a route whose
# argument chooses between behaviours, e.g. an action). Routes are named by their URL name, or by their
# pattern when they have no name.


def _p(w: World) -> dict[str, Any]:
    return {"project_id": w.project.pk}


def _job(w: World) -> dict[str, Any]:
    return {**_p(w), "job_id": w.training.pk}


def _ep(w: World) -> dict[str, Any]:
    return {**_p(w), "endpoint_id": w.endpoint.pk}


Filler = Callable[[World], dict[str, Any] | list[dict[str, Any]]]
FILLERS: dict[str, tuple[str, Filler]] = {
    # accounts
    "login": (GLOBAL, lambda w: {}),
    "logout": (GLOBAL, lambda w: {}),
    "password_change": (GLOBAL, lambda w: {}),
    "password_change_done": (GLOBAL, lambda w: {}),
    "invitation-list": (STAFF, lambda w: {}),
    "invitation-revoke": (STAFF, lambda w: {"invitation_id": w.invitation.pk}),
    # The link's token is its secret: bob does not know alice's, and a made-up one is the 404 page.
    "invitation-accept": (TENANT, lambda w: {"token": "a-token-bob-made-up"}),
    # core
    "health": (GLOBAL, lambda w: {}),
    "health-states": (GLOBAL, lambda w: {}),
    "health-ping": (GLOBAL, lambda w: {}),
    "health-ping-detail": (TENANT, lambda w: {"ping_id": w.ping.pk}),
    "healthz": (GLOBAL, lambda w: {}),
    # jobs
    "job-list": (TENANT, _p),
    "job-detail": (TENANT, _job),
    "job-metrics": (TENANT, _job),
    "job-action": (
        TENANT,
        lambda w: [{**_job(w), "action": a} for a in ("cancel", "retry", "continue", "move")],
    ),
    "wizard-start": (TENANT, _p),
    "wizard-model": (TENANT, _p),
    "wizard-data": (TENANT, _p),
    "wizard-technique": (TENANT, _p),
    "wizard-review": (TENANT, _p),
    "wizard-try": (TENANT, _p),
    "wizard-reset": (TENANT, _p),
    "api-job-list": (TENANT, _p),
    "api-job-detail": (TENANT, _job),
    # evaluations
    "evaluation-list": (TENANT, _p),
    "evaluation-report": (TENANT, lambda w: {**_p(w), "job_id": w.evaluation.pk}),
    "evaluation-export": (
        TENANT,
        lambda w: [{**_p(w), "job_id": w.evaluation.pk, "fmt": f} for f in ("html", "jsonl", "csv")],
    ),
    # endpoints and the gateway
    "gateway-models": (GATEWAY, lambda w: {}),
    "gateway-chat": (GATEWAY, lambda w: {}),
    "gateway-completions": (GATEWAY, lambda w: {}),
    "^v1/(?P<rest>.*)$": (GATEWAY, lambda w: {"rest": "embeddings"}),
    "endpoint-list": (TENANT, _p),
    "endpoint-detail": (TENANT, _ep),
    "endpoint-chat": (TENANT, _ep),
    "endpoint-export": (TENANT, lambda w: [{**_ep(w), "what": x} for x in ("adapter", "merged", "model")]),
    "endpoint-merge": (TENANT, _ep),
    "endpoint-push": (TENANT, _ep),
    "endpoint-action": (TENANT, lambda w: [{**_ep(w), "action": a} for a in ("undeploy", "redeploy")]),
    "job-deploy": (TENANT, _job),
    "model-catalog": (TENANT, _p),
    "model-deploy": (TENANT, _p),
    "builtin-deploy": (TENANT, lambda w: [{**_p(w), "variant": v} for v in ("judge", "teacher")]),
    "playground": (TENANT, _p),
    "api-key-new": (TENANT, _p),
    "api-key-revoke": (TENANT, lambda w: {**_p(w), "key_id": w.api_key.pk}),
    # synthetic data
    "dataset-list": (TENANT, _p),
    "dataset-detail": (TENANT, lambda w: {**_p(w), "dataset_id": w.dataset.pk}),
    "dataset-rows": (TENANT, lambda w: {**_p(w), "dataset_id": w.dataset.pk}),
    "dataset-download": (TENANT, lambda w: {**_p(w), "dataset_id": w.dataset.pk}),
    "dataset-delete": (TENANT, lambda w: {**_p(w), "dataset_id": w.dataset.pk}),
    "generation-new": (TENANT, _p),
    "generation-detail": (TENANT, lambda w: {**_p(w), "job_id": w.generation.pk}),
    "generation-rows": (TENANT, lambda w: {**_p(w), "job_id": w.generation_rows.pk}),
    "generation-row-edit": (TENANT, lambda w: {**_p(w), "job_id": w.generation_rows.pk, "row_id": w.row.pk}),
    "generation-save": (TENANT, lambda w: {**_p(w), "job_id": w.generation_rows.pk}),
    # projects
    "home": (GLOBAL, lambda w: {}),
    "project-list": (GLOBAL, lambda w: {}),
    "project-dashboard": (TENANT, _p),
    "project-members": (TENANT, _p),
    "project-member-role": (TENANT, lambda w: {**_p(w), "membership_id": w.membership.pk}),
    "project-member-remove": (TENANT, lambda w: {**_p(w), "membership_id": w.membership.pk}),
    "api-project-list": (GLOBAL, lambda w: {}),
    "api-project-detail": (TENANT, _p),
    # MLflow, behind the login
    "mlflow": (MLFLOW, lambda w: [{"path": ""}, {"path": "ajax-api/2.0/mlflow/experiments/search"}]),
    # secrets
    "project-settings": (TENANT, _p),
    "secret-delete": (TENANT, lambda w: {**_p(w), "secret_id": w.secret.pk}),
}


def _admin(w: World, arguments: list[str]) -> dict[str, Any]:
    """Every admin page is for staff only, whatever model it shows: its arguments name alice's project."""
    values = {"object_id": str(w.project.pk), "id": str(w.alice.pk), "app_label": "projects",
              "content_type_id": "1", "url": "projects/project/"}  # fmt: skip
    return {a: values[a] for a in arguments}


@dataclass
class Route:
    key: str
    namespace: str
    pattern: str
    regex: re.Pattern[str]
    arguments: list[str]


def all_routes() -> list[Route]:
    """Every URL pattern, walking included resolvers recursively."""
    found: list[Route] = []

    def walk(resolver: URLResolver, prefix: str, namespace: str) -> None:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                walk(entry, prefix + str(entry.pattern), entry.namespace or namespace)
            elif isinstance(entry, URLPattern):
                full = prefix + str(entry.pattern)
                regex = re.compile(entry.pattern.regex.pattern)
                found.append(Route(key=entry.name or str(entry.pattern), namespace=namespace, pattern=full,
                                   regex=regex, arguments=list(regex.groupindex)))  # fmt: skip

    walk(get_resolver(), "", "")
    return found


def _url(route: Route, kwargs: dict[str, Any]) -> str:
    if route.namespace == "admin" or not route.key or route.key.startswith("^"):
        # Unnamed patterns (and the admin's catch-all): build the path from the pattern itself.
        path = route.pattern.lstrip("^").rstrip("$")
        for name, value in kwargs.items():
            path = re.sub(rf"<(?:\w+:)?{name}>|\(\?P<{name}>[^)]*\)", str(value), path)
        path = re.sub(r"\^\(\?P<app_label>[^)]*\)/\$", kwargs.get("app_label", ""), path)
        path = path.replace("^", "").replace("$", "")
        return "/" + path
    return reverse(route.key, kwargs=kwargs)


def filled(world: World) -> list[tuple[Route, str, str]]:
    """(route, kind, URL) for every route and every set of arguments; fails naming an unfillable route."""
    out, missing = [], []
    for route in all_routes():
        if route.namespace == "admin":
            # The admin's own login and logout are its front door; everything else is for staff.
            kind = GLOBAL if route.key in ("login", "logout") else STAFF
            out.append((route, kind, _url(route, _admin(world, route.arguments))))
            continue
        if route.key not in FILLERS:
            missing.append(f"{route.pattern} (name {route.key!r}, arguments {route.arguments})")
            continue
        kind, filler = FILLERS[route.key]
        sets = filler(world)
        for kwargs in sets if isinstance(sets, list) else [sets]:
            assert sorted(kwargs) == sorted(route.arguments), (
                f"the filler for {route.key!r} gives {sorted(kwargs)}, the route takes {route.arguments}"
            )
            out.append((route, kind, _url(route, kwargs)))
    assert not missing, (
        "The isolation sweep cannot fill these routes: add a filler for each to FILLERS in "
        "tests/test_isolation.py (its kind and alice's objects for its arguments):\n  " + "\n  ".join(missing)
    )
    return out


def _body(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def _missing_twin(url: str, world: World) -> str:
    """The same URL with every id of alice's replaced by one that does not exist."""
    twin = url
    for pk in sorted({world.project.pk, world.training.pk, world.evaluation.pk, world.generation.pk,
                      world.generation_rows.pk, world.endpoint.pk, world.api_key.pk, world.row.pk,
                      world.membership.pk, world.ping.pk, world.invitation.pk}, reverse=True):  # fmt: skip
        twin = re.sub(rf"/{pk}(?=/|\.|$)", "/987654", twin)
    return twin


# The sweep -------------------------------------------------------------------------------------------


def test_every_route_can_be_filled_with_alices_objects(world):
    routes = filled(world)
    assert len(routes) >= len(FILLERS)  # some routes take several argument sets
    assert {r.key for r, _, _ in routes} >= set(FILLERS), "a filler names a route that no longer exists"


def test_bob_gets_a_404_for_every_one_of_alices_objects_with_get_and_post(world, client):
    problems = []
    for route, kind, url in filled(world):
        if kind == MLFLOW:
            continue  # swept with the real tracking server in tests/core/test_mlflow_proxy.py
        for method in ("get", "post"):
            client.force_login(world.bob)  # again each time: the sweep passes through the logout routes
            response = getattr(client, method)(url)
            body = _body(response)
            if SECRET in body:
                problems.append(f"{method.upper()} {url}: the answer shows alice's content")
            if response.get("Location", "").startswith(f"/projects/{world.project.pk}/"):
                problems.append(f"{method.upper()} {url}: redirected into alice's project")
            if (
                response.status_code >= 500 and route.key != "healthz"
            ):  # 503: a service of the test run is down
                problems.append(f"{method.upper()} {url}: {response.status_code}")
            if kind == TENANT and response.status_code != 404:
                # A method a route never takes is answered 405 before anything is looked up: allowed
                # only when it is the very answer a made-up id gets (so it tells bob nothing).
                twin = getattr(client, method)(_missing_twin(url, world))
                same = (response.status_code, body) == (twin.status_code, _body(twin))
                if not (response.status_code == 405 and same):
                    problems.append(f"{method.upper()} {url}: {response.status_code}, not 404")
            elif kind == STAFF:
                location = response.get("Location", "")
                if not (response.status_code == 302 and "login" in location):
                    problems.append(
                        f"{method.upper()} {url}: {response.status_code} {location}, not the login page"
                    )
            elif kind == GATEWAY and response.status_code not in (401, 404, 405):
                problems.append(f"{method.upper()} {url}: {response.status_code} for a session without a key")
    assert not problems, "\n".join(problems)


def test_bob_reaches_none_of_alices_endpoints_through_the_gateway_with_his_own_key(world, client):
    _, key = api_key_create(project=world.bob_project, user=world.bob, name="bob's key")
    auth = {"Authorization": f"Bearer {key}"}
    listed = client.get("/v1/models", headers=auth).json()
    assert listed["data"] == []
    for route in ("chat/completions", "completions"):
        body = {"model": world.endpoint.name, "messages": [{"role": "user", "content": "hi"}], "prompt": "hi"}
        response = client.post(f"/v1/{route}", body, content_type="application/json", headers=auth)
        assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


def _snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of every model, field by field, but sessions, `last_login` and django-axes' log of
    logins (logging in, which the test does before each request, writes them)."""
    skip = {"sessions.session", "axes.accesslog"}
    return {
        m._meta.label_lower: [
            {k: v for k, v in row.items() if k != "last_login"}
            for row in m._default_manager.order_by("pk").values()
        ]
        for m in django_apps.get_models()
        if m._meta.label_lower not in skip
    }


# Downloads that exist only once made (a merged model; a full model, for an adapter job): a 404 until then.
NOTHING_OF_THAT_KIND = {"endpoint-export"}


def _adapter_download(w: World) -> str:
    """The download that does exist: the job's adapter."""
    return reverse("endpoint-export", args=[w.project.pk, w.endpoint.pk, "adapter"])


# Pages that exist only to change something: a viewer is refused them with a message.
EDIT_PAGES = {
    "wizard-start",
    "wizard-model",
    "wizard-data",
    "wizard-technique",
    "wizard-review",
    "generation-new",
}


def _everything_a_form_asks() -> dict[str, Any]:
    """One POST body that every form of the app would accept from an editor: a name, a model, a
    dataset file, a role, a verdict, rows to act on."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = b'{"prompt": "p", "completion": "c"}\n'
    return {"name": "viewer-was-here", "model": "partial", "source": "partial", "role": "owner", "verdict": "rejected",
            "scope": "all", "username": "bob", "prompt": "edited", "completion": "edited", "topics": "t", "rows": "2",
            "file": SimpleUploadedFile("data.jsonl", data, content_type="application/jsonl")}  # fmt: skip


REFUSAL = re.compile(r"viewer|not allowed|cannot|only the project|owners", re.IGNORECASE)


def test_a_viewer_reads_everything_and_every_post_is_refused_with_a_message_and_changes_nothing(
    world, client, settings
):
    settings.ENGINE_WAKE_TIMEOUT_SECONDS = 1  # a chat that got through would otherwise wait for an engine
    before = _snapshot()
    problems = []
    for route, kind, url in filled(world):
        if kind != TENANT or route.key in ("invitation-accept", "health-ping-detail"):
            continue  # a link for people without an account; a ping is its sender's, not the project's
        client.force_login(world.viewer)
        got = client.get(url)
        if (
            got.status_code not in (200, 302, 405)
            and not (got.status_code == 403 and route.key in EDIT_PAGES and REFUSAL.search(_body(got)))
            and not (
                got.status_code == 404
                and route.key in NOTHING_OF_THAT_KIND
                and url != _adapter_download(world)
            )
        ):
            problems.append(f"GET {url}: {got.status_code}")
        if route.key == "endpoint-chat":
            chat = {"messages": [{"role": "user", "content": "hello"}]}
            response = client.post(url, chat, content_type="application/json")
        else:
            response = client.post(url, _everything_a_form_asks())
        if response.status_code == 405:
            continue  # a page that takes no POST
        body = _body(response)
        refused = response.status_code in (403, 404) or (
            response.status_code in (200, 422) and REFUSAL.search(body)
        )
        if not refused or response.status_code >= 500:
            problems.append(f"POST {url}: {response.status_code} without a refusal")
        elif response.status_code == 403 and not REFUSAL.search(body):
            problems.append(f"POST {url}: 403 without a message saying why")
    after = _snapshot()
    changed = [label for label in before if before[label] != after[label]]
    assert not changed, f"a viewer's POSTs changed {changed}"
    assert not problems, "\n".join(problems)


def test_nobody_logged_in_gets_the_login_page_json_401_for_the_api_and_the_gateways_401(world):
    client = Client()
    problems = []
    for route, kind, url in filled(world):
        if kind == GLOBAL:
            continue  # login, logout, health for monitors: open to all by design
        if route.key == "invitation-accept":
            continue  # the link is for people without an account
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            status, location = response.status_code, response.get("Location", "")
            if status == 405:
                continue
            if kind == GATEWAY:
                ok = status in (401, 404) and "error" in response.json()
            elif url.startswith("/api/"):
                ok = status == 401 and "error" in response.json()
            elif kind == MLFLOW and "-api/" in url:
                ok = status == 401 and response.json()["error_code"] == "UNAUTHENTICATED"  # MLflow's shape
            elif route.key == "endpoint-chat" or url.endswith(".json"):
                ok = status == 401 and "error" in response.json()  # the job chart's and the playground's JSON
            else:
                ok = status == 302 and "login" in location
            if not ok:
                problems.append(f"{method.upper()} {url}: {status} {location}")
    assert not problems, "\n".join(problems)


# Path-like fields: alice's files pasted into bob's own project -----------------------------------------


def test_alices_model_and_data_paths_pasted_into_bobs_project_are_refused_like_a_missing_path(world, client):
    client.force_login(world.bob)
    bob = world.bob_project.pk
    adapter = world.training.model_artifact
    made_up = str(Path(adapter).parent / "no-such-adapter")

    def answer(response: Any, path: str) -> str:
        # The page with the path typed and the CSRF token (new each response) taken out.
        body = re.sub(r'(CSRFToken": "|csrfmiddlewaretoken" value=")[^"]+', r"\1", _body(response))
        return f"{response.status_code} " + body.replace(path, "PATH")

    def deploy(model: str) -> str:
        return answer(client.post(reverse("endpoint-list", args=[bob]), {"model": model}), model)

    def wizard_local(path: str) -> str:
        response = client.post(reverse("wizard-model", args=[bob]), {"source": "local", "local_path": path})
        return answer(response, path)

    # The same answer for alice's adapter as for a folder that does not exist: nothing tells bob it is there.
    assert deploy(adapter) == deploy(made_up)
    assert not Endpoint.objects.filter(project=world.bob_project).exists()
    assert wizard_local(adapter) == wizard_local(made_up)
    assert wizard_local(adapter).startswith("422 ")
    # Alice's job and dataset, by id, from bob's wizard: not his.
    response = client.post(reverse("wizard-model", args=[bob]), {"source": f"job:{world.training.pk}"})
    assert response.status_code == 404 and SECRET not in _body(response)
    client.post(reverse("wizard-model", args=[bob]), {"source": "partial"})
    response = client.post(
        reverse("wizard-data", args=[bob]), {"dataset": f"dataset:{world.dataset.pk}", "eval_choice": "auto"}
    )
    assert "Choose a dataset or upload one." in _body(response)
    draft = Draft.objects.filter(project=world.bob_project).first()
    assert draft is None or SECRET not in json.dumps(draft.data)


def test_alices_endpoint_chosen_by_id_as_a_judge_in_bobs_project_is_a_404(world, client):
    client.force_login(world.bob)
    bob = world.bob_project.pk
    alices = str(world.endpoint.pk)
    client.post(reverse("wizard-model", args=[bob]), {"source": "partial"})
    client.post(
        reverse("wizard-data", args=[bob]), {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "none"}
    )
    offered = client.get(reverse("wizard-technique", args=[bob]), {"technique": "rlaif"})
    assert SECRET not in _body(offered)  # not offered
    for name, data in (
        ("wizard-technique", {"technique": "rlaif", "t-method": "lora", "p-judge_endpoint": alices}),
        ("wizard-try", {"technique": "rlaif", "p-judge_endpoint": alices}),
        ("evaluation-list", {"judge_endpoint": alices}),
    ):
        response = client.post(reverse(name, args=[bob]), data)
        assert response.status_code == 404 and SECRET not in _body(response), name
    assert not Job.objects.filter(project=world.bob_project).exists()
    draft = Draft.objects.filter(project=world.bob_project).first()
    assert draft is None or "judge_endpoint" not in json.dumps(draft.data)
