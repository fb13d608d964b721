"""MLflow behind the login: the /mlflow/ proxy against the real tracking server, with runs in two projects
logged through the training layer's own tracking code. Every route of the proxy's table is swept, so a
route added there is covered here without editing this file."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from apps.core.mlflow_proxy import GRAPHQL_FIELDS, ROUTES, Route, experiment_name
from apps.projects.models import Role
from apps.projects.services import membership_add, project_create
from tests.factories import UserFactory
from tests.harness import mlflow_get

pytestmark = pytest.mark.django_db


def _logged_run(uri: str, project_id: int, folder: Path, words: str) -> dict[str, Any]:
    """A finished run in the project's experiment, made by workers/training/tracking.py as a job's is:
    params, a loss curve and an adapter folder as artifacts."""
    from workers.training import tracking

    adapter = folder / "adapter-out"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"words": words}))
    tracker, problem = tracking.start(
        tracking_uri=uri, experiment=experiment_name(project_id), run_name=f"sft-{words}", output=folder,
        params={"output_dir": str(folder), "secret_words": words},
    )  # fmt: skip
    assert tracker is not None, problem
    for step in range(1, 4):
        tracker.log_metrics({"loss": 1.0 / step}, step=step)
    tracker.finish(artifact=adapter, kind="adapter", register_as=None, metrics={"global_step": 3})
    experiment = mlflow_get(uri, "experiments/get-by-name", experiment_name=experiment_name(project_id))
    return {"run_id": tracker.run_id, "experiment_id": experiment["experiment"]["experiment_id"], "words": words,
            "project_id": project_id}  # fmt: skip


# Runs logged once per project id: each test's projects get the same ids again (its transaction is rolled
# back), and a run takes seconds to log, so a later test finds its project's run already there.
_logged: dict[tuple[int, str], dict[str, Any]] = {}


def _run_of(uri: str, project_id: int, folder: Path, words: str) -> dict[str, Any]:
    if (project_id, words) not in _logged:
        _logged[project_id, words] = _logged_run(uri, project_id, folder, words)
    return _logged[project_id, words]


@pytest.fixture
def runs(mlflow_service, alice, bob, alice_project, tmp_path) -> dict[str, Any]:
    """Alice's project and Bob's, each with a run; Carol a viewer of Alice's."""
    bob_project = project_create(user=bob, name="Bob's bot")
    carol = UserFactory(username="carol")
    membership_add(project=alice_project, actor=alice, username="carol", role=Role.VIEWER)
    return {
        "alice": _run_of(mlflow_service, alice_project.pk, tmp_path / "a", "alice-only-words"),
        "bob": _run_of(mlflow_service, bob_project.pk, tmp_path / "b", "bob-only-words"),
        "alice_project": alice_project, "bob_project": bob_project, "carol": carol,
    }  # fmt: skip


def _content(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _as(user: Any) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _request(client: Client, route: Route, path: str, run: dict[str, Any]) -> Any:
    """The request a route's kind takes, aimed at `run` (its experiment, the run, its adapter)."""
    url = f"/mlflow/{path}"
    exp, run_id = run["experiment_id"], run["run_id"]
    queries: dict[str, dict[str, Any]] = {
        "ui": {}, "global": {},
        "experiment": {"experiment_id": exp},
        "experiment_by_name": {"experiment_name": experiment_name(run["project_id"])},
        "experiments_search": {"max_results": 100},
        "run": {"run_id": run_id, "run_uuid": run_id, "run_ids": run_id, "metric_key": "loss", "max_results": 10},
        "artifact": {"run_uuid": run_id, "path": "adapter/adapter_config.json"},
    }  # fmt: skip
    bodies: dict[str, dict[str, Any]] = {
        "search": {"experiment_ids": [exp], "max_results": 100},
        "experiments_search": {"max_results": 100},
        "run_write": {"run_id": run_id, "key": "reviewed", "value": "yes", "run_name": "renamed"},
        "graphql": _graphql("mlflowGetRun", {"runId": run_id}),
    }
    if "GET" in route.methods and route.kind in queries:
        return client.get(url, queries[route.kind])
    return client.post(url, json.dumps(bodies[route.kind]), content_type="application/json")


# What each GraphQL root field selects, enough to show a run's id or an experiment's name if it leaked.
GRAPHQL_SELECTIONS = {
    "mlflowGetRun": "run { info { runUuid runName } data { params { key value } } }",
    "mlflowListArtifacts": "files { path }",
    "mlflowGetMetricHistoryBulkInterval": "metrics { key value step runId }",
    "mlflowGetExperiment": "experiment { experimentId name }",
    "mlflowSearchRuns": "runs { info { runUuid runName } }",
    "mlflowSearchDatasets": "datasetSummaries { experimentId name }",
}


def _graphql(field: str, value: dict[str, Any]) -> dict[str, Any]:
    """A query as MLflow's UI writes it: the input in a variable."""
    query = f"query Q($input: {field[0].upper()}{field[1:]}Input!) {{ {field}(input: $input) {{ {GRAPHQL_SELECTIONS[field]} }} }}"
    return {"operationName": "Q", "query": query, "variables": {"input": value}}


# Kinds that hold no project's data: the UI's shell and MLflow's server info.
SHARED = {"ui", "global"}
# Kinds whose answer is a list narrowed to the user's experiments rather than a 404.
LISTS = {"experiments_search", "search"}


def test_bob_gets_404_on_every_proxied_route_for_alices_experiment_run_and_artifacts(runs, bob):
    client, alice_run = _as(bob), runs["alice"]
    checked = 0
    for route in ROUTES:
        for path in route.examples:
            response = _request(client, route, path, alice_run)
            body = _content(response).decode(errors="replace")
            assert alice_run["run_id"] not in body, (path, body[:300])
            assert alice_run["words"] not in body, path
            if route.kind in LISTS:
                assert response.status_code == 200, (path, body[:300])
            elif route.kind not in SHARED:
                assert response.status_code == 404, (path, response.status_code, body[:300])
                assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
            checked += 1
    assert checked == sum(len(r.examples) for r in ROUTES) > 20


def test_alice_reaches_her_experiment_run_metrics_and_artifacts_and_only_hers(runs, alice):
    client, mine, theirs = _as(alice), runs["alice"], runs["bob"]
    for route in ROUTES:
        if route.kind in SHARED or route.kind == "run_write":
            continue
        for path in route.examples:
            response = _request(client, route, path, mine)
            assert response.status_code == 200, (path, response.status_code, response.content[:300])
            body = _content(response)
            assert theirs["run_id"].encode() not in body and theirs["words"].encode() not in body, path
            if route.kind in ("run", "artifact") and "artifacts/list" not in path:
                assert mine["run_id"].encode() in body or b"alice-only-words" in body or b"loss" in body, path

    run = _request(
        client, _route("ajax-api/2.0/mlflow/runs/get"), "ajax-api/2.0/mlflow/runs/get", mine
    ).json()
    assert run["run"]["data"]["params"]  # the spec, as the job logged it
    history = client.get(
        "/mlflow/ajax-api/2.0/mlflow/metrics/get-history", {"run_id": mine["run_id"], "metric_key": "loss"}
    )
    assert [p["step"] for p in history.json()["metrics"]] == [1, 2, 3]
    artifact = client.get(
        "/mlflow/get-artifact", {"run_uuid": mine["run_id"], "path": "adapter/adapter_config.json"}
    )
    assert json.loads(_content(artifact)) == {"words": "alice-only-words"}
    assert "sandbox" in artifact["Content-Security-Policy"]


def _route(path: str) -> Route:
    return next(r for r in ROUTES if r.matches(path))


def test_searches_never_include_another_projects_runs(runs, alice):
    client, mine, theirs = _as(alice), runs["alice"], runs["bob"]
    search = "/mlflow/ajax-api/2.0/mlflow/runs/search"
    for body in ({}, {"experiment_ids": [theirs["experiment_id"]]},
                 {"experiment_ids": [mine["experiment_id"], theirs["experiment_id"]]}):  # fmt: skip
        found = client.post(search, json.dumps(body), content_type="application/json").json().get("runs", [])
        assert theirs["run_id"] not in [r["info"]["run_id"] for r in found], body
        assert (mine["run_id"] in [r["info"]["run_id"] for r in found]) == (
            body != {"experiment_ids": [theirs["experiment_id"]]}
        )
    experiments = client.get("/mlflow/ajax-api/2.0/mlflow/experiments/search", {"max_results": 100}).json()
    assert [e["experiment_id"] for e in experiments["experiments"]] == [mine["experiment_id"]]


def test_members_tag_and_rename_their_runs_viewers_cannot_and_deletes_are_refused(
    runs, alice, mlflow_service
):
    mine, carol = runs["alice"], runs["carol"]
    set_tag = "/mlflow/ajax-api/2.0/mlflow/runs/set-tag"
    note = {"run_id": mine["run_id"], "key": "mlflow.note.content", "value": "Looks good."}
    viewer = _as(carol).post(set_tag, json.dumps(note), content_type="application/json")
    assert viewer.status_code == 403 and "Viewers" in viewer.json()["message"]
    member = _as(alice)
    assert member.post(set_tag, json.dumps(note), content_type="application/json").status_code == 200
    rename = {"run_id": mine["run_id"], "run_name": "first try", "status": "KILLED"}
    assert (
        member.post(
            "/mlflow/ajax-api/2.0/mlflow/runs/update", json.dumps(rename), content_type="application/json"
        ).status_code
        == 200
    )
    run = mlflow_get(mlflow_service, "runs/get", run_id=mine["run_id"])["run"]
    assert (
        run["data"]["tags"] and {"key": "mlflow.note.content", "value": "Looks good."} in run["data"]["tags"]
    )
    assert (
        run["info"]["run_name"] == "first try" and run["info"]["status"] == "FINISHED"
    )  # the status stays the job's
    forged = {"run_id": mine["run_id"], "key": "mlflow.source.name", "value": "elsewhere"}
    assert member.post(set_tag, json.dumps(forged), content_type="application/json").status_code == 400
    for path in ("runs/delete", "experiments/delete", "experiments/update", "experiments/create",
                 "registered-models/search", "model-versions/get-artifact", "users/current"):  # fmt: skip
        body = {
            "run_id": mine["run_id"],
            "experiment_id": mine["experiment_id"],
            "name": "x",
            "new_name": "y",
        }
        response = member.post(
            f"/mlflow/ajax-api/2.0/mlflow/{path}", json.dumps(body), content_type="application/json"
        )
        assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", (
            path
        )
    assert member.get("/mlflow/model-versions/get-artifact", {"name": "x", "version": "1"}).status_code == 404


def test_anonymous_gets_the_login_page_for_the_ui_and_401_for_the_api(runs):
    client, run = _as(None), runs["alice"]
    page = client.get("/mlflow/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/?next=/mlflow/")
    for route in ROUTES:
        for path in route.examples:
            response = _request(client, route, path, run)
            if route.kind == "ui":
                assert response.status_code == 302, path
            else:
                assert response.status_code == 401 and response.json()["error_code"] == "UNAUTHENTICATED", (
                    path
                )


def test_the_tracking_server_itself_answers_401_without_the_apps_credentials(runs, mlflow_service):
    for path in ("api/2.0/mlflow/experiments/search?max_results=10", f"api/2.0/mlflow/runs/get?run_id={runs['alice']['run_id']}",
                 f"get-artifact?run_uuid={runs['alice']['run_id']}&path=adapter/adapter_config.json", ""):  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{mlflow_service}/{path}", timeout=10)
        assert refused.value.code == 401, path
    wrong = urllib.request.Request(
        f"{mlflow_service}/api/2.0/mlflow/experiments/search?max_results=1",
        headers={"Authorization": "Basic YXRlbGllcjp3cm9uZw=="},
    )  # atelier:wrong
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(wrong, timeout=10)
    assert refused.value.code == 401


def test_bob_gets_404_on_every_graphql_field_for_alices_run_and_experiment_and_alice_gets_hers(
    runs, bob, alice
):
    mine = runs["alice"]
    inputs = {
        "mlflowGetRun": {"runId": mine["run_id"]},
        "mlflowListArtifacts": {"runId": mine["run_id"]},
        "mlflowGetMetricHistoryBulkInterval": {"runIds": [mine["run_id"]], "metricKey": "loss"},
        "mlflowGetExperiment": {"experimentId": mine["experiment_id"]},
        "mlflowSearchRuns": {"experimentIds": [mine["experiment_id"]]},
        "mlflowSearchDatasets": {"experimentIds": [mine["experiment_id"]]},
    }
    assert set(inputs) == set(GRAPHQL_FIELDS)  # a new field needs its case here
    for client, theirs in ((_as(bob), True), (_as(alice), False)):
        for field, value in inputs.items():
            response = client.post(
                "/mlflow/graphql", json.dumps(_graphql(field, value)), content_type="application/json"
            )
            if theirs:  # a search of only another project's experiments has nothing left to search
                assert response.status_code == 404, (field, response.content[:300])
            else:
                assert response.status_code == 200, (field, response.content[:300])
            shown = (
                mine["run_id"] in response.content.decode()
                or f'"{mine["experiment_id"]}"' in response.content.decode()
            )
            assert shown == (
                not theirs
                and field
                in (
                    "mlflowGetRun",
                    "mlflowGetExperiment",
                    "mlflowSearchRuns",
                    "mlflowGetMetricHistoryBulkInterval",
                )
            ), field
    literal = {
        "query": f'query {{ mlflowGetRun(input: {{runId: "{mine["run_id"]}"}}) {{ run {{ info {{ runUuid }} }} }} }}'
    }
    assert (
        _as(bob).post("/mlflow/graphql", json.dumps(literal), content_type="application/json").status_code
        == 404
    )
    for query in ("{ __schema { types { name } } }", "{ test(inputString: \"x\") { output } }",
                  "query A { mlflowGetRun(input: {runId: \"x\"}) { run { info { runUuid } } } } fragment F on Query { __typename }"):  # fmt: skip
        response = _as(alice).post(
            "/mlflow/graphql", json.dumps({"query": query}), content_type="application/json"
        )
        assert response.status_code == 404, query
