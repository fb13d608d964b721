"""MLflow behind Atelier's login, under /mlflow/: its UI and the part of its API that the UI reads.

The tracking server itself answers only the app and the workers (apps/launcher.py runs it with MLflow's
basic-auth app and a password in the data folder). Users reach it here, as themselves: a request is
passed on, with the app's credentials, only if its route is in ROUTES and its check passes.

- Experiments: each project logs into one, named `experiment_name(project.pk)` by the runner. A user
  reaches the experiments of the projects they belong to; any other id is a 404, as a missing one is.
- Runs, their metrics and artifacts: only runs of those experiments (looked up in one search).
- Searches: their experiment ids are narrowed to the user's own, and experiment lists are filtered, so
  a result never holds another project's runs.
- Writes: members and owners may tag a run, write its note and rename it; viewers get a 403 (they see
  the run, so it is no secret). Deleting runs, creating or changing experiments (their names tie them
  to projects), the model registry, users and everything else not in ROUTES are a 404 for everyone.

Anonymous requests: the UI's pages redirect to the login page, API routes answer 401 in JSON.
"""

from __future__ import annotations

import asyncio
import json
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from apps.projects.models import Membership

TIMEOUT = httpx.Timeout(connect=5.0, read=120.0, write=30.0, pool=5.0)
# MLflow's run ids are 32 hex digits; anything else is refused before it goes into a search filter.
RUN_ID = re.compile(r"[0-9a-f]{32}")
EXPERIMENT_ID = re.compile(r"[0-9]{1,19}")
# Tags MLflow's UI writes (the run's note) and any tag of the user's own; the rest of `mlflow.*` is
# MLflow's bookkeeping (source, parent run, logged models) that the app and its links rely on.
WRITABLE_SYSTEM_TAGS = {"mlflow.note.content"}
# What MLflow's UI is allowed to load and contact: itself only. Its bundle sets inline styles.
UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'self'; "
    "base-uri 'self'; form-action 'self'"
)
# An artifact is whatever a run logged: never run it as a page of this site.
ARTIFACT_CSP = "sandbox; default-src 'none'"
WHOLE_UP_TO = 1 << 20
PASSED_HEADERS = ("content-type", "content-disposition", "cache-control", "last-modified", "etag")


def experiment_name(project_id: int) -> str:
    """The MLflow experiment a project's jobs log into (workers/runner.py names it with this)."""
    return f"project-{project_id}"


@dataclass(frozen=True)
class Route:
    """One reachable MLflow route. `pattern`: the path after /mlflow/ (a regex, matched whole); `kind`:
    which check guards it (CHECKS), and so what a test must send to reach it."""

    pattern: str
    methods: frozenset[str]
    kind: str
    examples: tuple[str, ...]  # concrete paths it matches, for the tests that sweep every route

    def matches(self, path: str) -> bool:
        return re.fullmatch(self.pattern, path) is not None


GET, POST, GET_POST = frozenset({"GET"}), frozenset({"POST"}), frozenset({"GET", "POST"})


def _api(version: str, name: str, methods: frozenset[str], kind: str) -> Route:
    """A REST route under both prefixes: `ajax-api` (what the UI calls) and `api` (MLflow's client)."""
    return Route(
        rf"(?:ajax-api|api)/{re.escape(version)}/mlflow/{re.escape(name)}",
        methods,
        kind,
        (f"ajax-api/{version}/mlflow/{name}", f"api/{version}/mlflow/{name}"),
    )


def _ajax(name: str, methods: frozenset[str], kind: str) -> Route:
    """A route MLflow serves to its UI only (under ajax-api/2.0)."""
    return Route(rf"ajax-api/2\.0/mlflow/{re.escape(name)}", methods, kind, (f"ajax-api/2.0/mlflow/{name}",))


# Taken from what the UI of the installed MLflow (3.17) calls on the experiment, run and artifact
# pages. A route that is not here is a 404.
ROUTES: tuple[Route, ...] = (
    Route(r"", GET, "ui", ("",)),
    Route(r"static-files/[A-Za-z0-9._/-]+", GET, "ui", ("static-files/favicon.ico",)),
    _api("3.0", "server-info", GET, "global"),
    _api("2.0", "experiments/get", GET, "experiment"),
    _api("2.0", "experiments/get-by-name", GET, "experiment_by_name"),
    _api("2.0", "experiments/search", GET_POST, "experiments_search"),
    _ajax("experiments/search-datasets", POST, "search"),
    _api("2.0", "runs/search", POST, "search"),
    _api("2.0", "logged-models/search", POST, "search"),
    _api("2.0", "runs/get", GET, "run"),
    _api("2.0", "metrics/get-history", GET, "run"),
    _ajax("metrics/get-history-bulk", GET, "run"),
    _ajax("metrics/get-history-bulk-interval", GET, "run"),
    _api("2.0", "artifacts/list", GET, "run"),
    Route(r"get-artifact", GET, "artifact", ("get-artifact",)),
    Route(r"graphql", POST, "graphql", ("graphql",)),
    _api("2.0", "runs/set-tag", POST, "run_write"),
    _api("2.0", "runs/delete-tag", POST, "run_write"),
    _api("2.0", "runs/update", POST, "run_write"),
)


def route_for(path: str) -> Route | None:
    return next((route for route in ROUTES if route.matches(path)), None)


class Refused(Exception):
    def __init__(self, status: int, message: str, code: str = "RESOURCE_DOES_NOT_EXIST") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code

    def response(self) -> JsonResponse:
        return JsonResponse({"error_code": self.code, "message": self.message}, status=self.status)


def _not_found(what: str = "route") -> Refused:
    return Refused(404, f"No such {what} in your projects' MLflow experiments.")


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def _client() -> httpx.AsyncClient:
    """One client per event loop, with the app's credentials for the tracking server."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = httpx.AsyncClient(
            base_url=settings.MLFLOW_TRACKING_URI.rstrip("/") + "/",
            auth=settings.MLFLOW_CREDENTIALS,
            timeout=TIMEOUT,
        )
    return client


async def _upstream(method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        response = await _client().request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise Refused(
            502, f"MLflow cannot be reached ({exc.__class__.__name__}).", "TEMPORARILY_UNAVAILABLE"
        ) from exc
    _raise_for_credentials(response)
    return response


def _raise_for_credentials(response: httpx.Response) -> None:
    if response.status_code in (401, 403):
        # Never passed on: a 401 with WWW-Authenticate would make the browser ask for MLflow's password.
        raise Refused(
            502,
            "MLflow refused Atelier's own credentials (MLFLOW_TRACKING_USERNAME/PASSWORD).",
            "INTERNAL_ERROR",
        )


# An experiment's id never changes for its name; a project's is found once, then remembered.
_experiment_ids: dict[str, str] = {}


async def _experiment_id(name: str) -> str | None:
    if name in _experiment_ids:
        return _experiment_ids[name]
    response = await _upstream(
        "GET", "api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name}
    )
    if response.status_code != 200:
        return None  # the project has not logged a run yet
    found = str(response.json()["experiment"]["experiment_id"])
    _experiment_ids[name] = found
    return found


@dataclass
class Call:
    """One proxied request: who asks, what they may reach, and the ids it names."""

    request: HttpRequest
    path: str
    route: Route
    experiments: dict[str, Membership]  # experiment id -> the user's membership in its project
    query: list[tuple[str, str]]
    body: dict[str, Any] | None
    runs: dict[str, str] = field(default_factory=dict)  # run id -> its experiment id, once checked

    def values(self, *names: str) -> list[str]:
        """Every value of these parameters, in the query and in the JSON body: MLflow reads one or the
        other, so both are checked."""
        found = [value for key, value in self.query if key in names]
        for name in names:
            value = (self.body or {}).get(name)
            if isinstance(value, list):
                found += [str(v) for v in value]
            elif value is not None:
                found.append(str(value))
        return found


async def _allowed_experiments(user: Any) -> dict[str, Membership]:
    memberships = [m async for m in Membership.objects.filter(user=user).select_related("project")]
    found: dict[str, Membership] = {}
    for membership in memberships:
        experiment_id = await _experiment_id(experiment_name(membership.project_id))
        if experiment_id is not None:
            found[experiment_id] = membership
    return found


async def _check_runs(call: Call, ids: list[str]) -> None:
    """Every id is a run of the user's experiments (deleted runs included), or Refused 404."""
    wanted = sorted(set(ids))
    if not wanted or not call.experiments or any(not RUN_ID.fullmatch(i) for i in wanted):
        raise _not_found("run")
    quoted = ", ".join(f"'{i}'" for i in wanted)
    response = await _upstream("POST", "api/2.0/mlflow/runs/search", json={
        "experiment_ids": list(call.experiments), "filter": f"attributes.run_id IN ({quoted})",
        "run_view_type": "ALL", "max_results": len(wanted),
    })  # fmt: skip
    if response.status_code != 200:
        raise _not_found("run")
    call.runs = {
        r["info"]["run_id"]: str(r["info"]["experiment_id"]) for r in response.json().get("runs", [])
    }
    if set(call.runs) != set(wanted):
        raise _not_found("run")


# Checks: each either raises Refused, or returns what to send instead of the request's own (`json`: the
# body; `answer`: no request, this answer) and a function that may change the answer's JSON.
Forward = tuple[dict[str, Any], Callable[[Any], Any] | None]


async def _check_global(call: Call) -> Forward:
    return {}, None


async def _check_experiment(call: Call) -> Forward:
    ids = call.values("experiment_id")
    if not ids or any(i not in call.experiments for i in ids):
        raise _not_found("experiment")
    return {}, None


async def _check_experiment_by_name(call: Call) -> Forward:
    def only_ours(data: Any) -> Any:
        if str(data.get("experiment", {}).get("experiment_id")) not in call.experiments:
            raise _not_found("experiment")
        return data

    return {}, only_ours


async def _check_experiments_search(call: Call) -> Forward:
    def only_ours(data: Any) -> Any:
        data["experiments"] = [
            e for e in data.get("experiments", []) if str(e.get("experiment_id")) in call.experiments
        ]
        return data

    return {}, only_ours


async def _check_search(call: Call) -> Forward:
    """A search over experiments (runs, logged models, datasets): only over the user's own."""
    asked = call.values("experiment_ids")
    ids = [i for i in asked if i in call.experiments] if asked else list(call.experiments)
    if not ids:
        return {"answer": {}}, None  # nothing of theirs to search: MLflow's empty answer, without asking it
    return {"json": {**(call.body or {}), "experiment_ids": ids}}, None


async def _check_run(call: Call) -> Forward:
    await _check_runs(call, call.values("run_id", "run_uuid", "run_ids"))
    return {}, None


async def _check_run_write(call: Call) -> Forward:
    await _check_runs(call, call.values("run_id", "run_uuid"))
    if not all(call.experiments[e].can_edit for e in call.runs.values()):
        raise Refused(
            403, "Viewers cannot change runs; a member or owner of the project can.", "PERMISSION_DENIED"
        )
    body = dict(call.body or {})
    if call.path.endswith("runs/update"):
        # Renaming only: a run's status and end time are the job's, written by its worker.
        body = {k: v for k, v in body.items() if k in ("run_id", "run_uuid", "run_name")}
    key = str(body.get("key", ""))
    if key.startswith("mlflow.") and key not in WRITABLE_SYSTEM_TAGS:
        raise Refused(
            400, f"The tag {key} is MLflow's own and cannot be changed here.", "INVALID_PARAMETER_VALUE"
        )
    return {"json": body}, None


async def _check_artifact(call: Call) -> Forward:
    await _check_runs(call, call.values("run_id", "run_uuid"))
    return {}, None


# MLflow's GraphQL root fields (its run page reads the run and its experiment this way): which check each
# takes and the names of the ids in its `input`. Another root field, introspection included, is a 404.
GRAPHQL_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mlflowGetRun": ("run", ("runId", "runUuid")),
    "mlflowListArtifacts": ("run", ("runId", "runUuid")),
    "mlflowGetMetricHistoryBulkInterval": ("run", ("runIds",)),
    "mlflowGetExperiment": ("experiment", ("experimentId",)),
    "mlflowSearchRuns": ("search", ("experimentIds",)),
    "mlflowSearchDatasets": ("search", ("experimentIds",)),
}


def _ids(value: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for key in keys:
        item = value.get(key)
        found += [str(i) for i in item] if isinstance(item, list) else [] if item is None else [str(item)]
    return found


async def _check_graphql(call: Call) -> Forward:
    """One query or mutation of known root fields, each with one `input` (a variable, as the UI sends it,
    or a literal), checked as the REST route of the same name is; searches narrowed in the variables."""
    from graphql import (
        FieldNode,
        GraphQLError,
        OperationDefinitionNode,
        VariableNode,
        parse,
        value_from_ast_untyped,
    )

    body = call.body or {}
    query, variables = body.get("query"), dict(body.get("variables") or {})
    if not isinstance(query, str):
        raise Refused(400, "A GraphQL request needs a query.", "INVALID_PARAMETER_VALUE")
    try:
        document = parse(query, max_tokens=5000)
    except GraphQLError as exc:
        raise Refused(
            400, f"The GraphQL query does not parse: {exc.message}", "INVALID_PARAMETER_VALUE"
        ) from exc
    # One operation and no fragment definitions: the UI sends no more, and so nothing is hidden elsewhere.
    if len(document.definitions) != 1 or not isinstance(
        operation := document.definitions[0], OperationDefinitionNode
    ):
        raise _not_found("GraphQL operation")
    runs: list[str] = []
    for selection in operation.selection_set.selections:
        name = selection.name.value if isinstance(selection, FieldNode) else ""
        arguments = (
            {a.name.value: a.value for a in selection.arguments} if isinstance(selection, FieldNode) else {}
        )
        if name not in GRAPHQL_FIELDS or set(arguments) != {"input"}:
            raise _not_found("GraphQL field")
        kind, keys = GRAPHQL_FIELDS[name]
        node = arguments["input"]
        variable = node.name.value if isinstance(node, VariableNode) else None
        value = variables.get(variable) if variable else value_from_ast_untyped(node, variables)
        if not isinstance(value, dict):
            raise _not_found("GraphQL input")
        ids = _ids(value, keys)
        if kind == "run":
            runs += ids or ["-"]  # a run field without a run id is refused with the rest
        elif kind == "experiment":
            if not ids or any(i not in call.experiments for i in ids):
                raise _not_found("experiment")
        else:
            narrowed = [i for i in ids if i in call.experiments] if ids else list(call.experiments)
            if not narrowed or (variable is None and narrowed != ids):
                raise _not_found("experiment")
            if variable:
                variables[variable] = {**value, keys[0]: narrowed}
    if runs:
        await _check_runs(call, runs)
    return {"json": {**body, "variables": variables}}, None


CHECKS: dict[str, Callable[[Call], Awaitable[Forward]]] = {
    "graphql": _check_graphql,
    "ui": _check_global,
    "global": _check_global,
    "experiment": _check_experiment,
    "experiment_by_name": _check_experiment_by_name,
    "experiments_search": _check_experiments_search,
    "search": _check_search,
    "run": _check_run,
    "run_write": _check_run_write,
    "artifact": _check_artifact,
}
STREAMED = {"ui", "artifact"}  # passed through as they come; the rest are JSON, read whole


def _body(request: HttpRequest) -> dict[str, Any] | None:
    if request.method != "POST":
        return None
    # Only JSON: a page of another site cannot send it without a CORS preflight, which this never
    # answers, so the session cookie cannot be used from there (the UI sends no CSRF token).
    if request.content_type != "application/json":
        raise Refused(
            415, "MLflow's API takes JSON (Content-Type: application/json).", "INVALID_PARAMETER_VALUE"
        )
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RequestDataTooBig) as exc:
        raise Refused(400, f"The request body is not usable JSON: {exc}", "MALFORMED_REQUEST") from exc
    if not isinstance(body, dict):
        raise Refused(400, "The request body must be a JSON object.", "MALFORMED_REQUEST")
    return body


def _headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in PASSED_HEADERS if name in response.headers}


async def _stream(call: Call) -> HttpResponseBase:
    client = _client()
    upstream = client.build_request("GET", call.path, params=tuple(call.query))
    try:
        response = await client.send(upstream, stream=True)
    except httpx.HTTPError as exc:
        raise Refused(
            502, f"MLflow cannot be reached ({exc.__class__.__name__}).", "TEMPORARILY_UNAVAILABLE"
        ) from exc
    try:
        _raise_for_credentials(response)
    except Refused:
        await response.aclose()
        raise

    # A small answer (most artifacts, the UI's files but its bundle) is read whole and sent as it is; a
    # large one (a full model's weights) streams, so the web process never holds it.
    head, chunks = b"", response.aiter_bytes()
    try:
        while len(head) < WHOLE_UP_TO:
            head += await anext(chunks)
    except StopAsyncIteration:
        await response.aclose()
        out: HttpResponseBase = HttpResponse(head, status=response.status_code, headers=_headers(response))
    else:

        async def rest() -> AsyncIterator[bytes]:
            try:
                yield head
                async for chunk in chunks:
                    yield chunk
            finally:
                await response.aclose()

        out = StreamingHttpResponse(rest(), status=response.status_code, headers=_headers(response))
    out["Content-Security-Policy"] = UI_CSP if call.route.kind == "ui" else ARTIFACT_CSP
    out["X-Content-Type-Options"] = "nosniff"
    return out


async def _forward(call: Call, forward: Forward) -> HttpResponseBase:
    kwargs, change = forward
    if "answer" in kwargs:
        return JsonResponse(kwargs["answer"])
    if "json" not in kwargs and call.body is not None:
        kwargs["json"] = call.body
    response = await _upstream(call.request.method or "GET", call.path, params=tuple(call.query), **kwargs)
    if change is None or response.status_code != 200:
        return HttpResponse(response.content, status=response.status_code, headers=_headers(response))
    return JsonResponse(change(response.json()))


@csrf_exempt
async def proxy(request: HttpRequest, path: str) -> HttpResponseBase:
    route = route_for(path)
    user = await request.auser()
    if not user.is_authenticated:
        if route is not None and route.kind == "ui":
            return redirect_to_login(request.get_full_path())
        return Refused(401, "Sign in to Atelier to use MLflow.", "UNAUTHENTICATED").response()
    if not settings.MLFLOW_TRACKING_URI.startswith(("http://", "https://")):
        return Refused(404, "No MLflow tracking server is configured.").response()
    if route is None or request.method not in route.methods:
        return _not_found().response()
    try:
        query = [(key, value) for key, values in request.GET.lists() for value in values]
        call = Call(request, path, route, await _allowed_experiments(user), query, _body(request))
        forward = await CHECKS[route.kind](call)
        if route.kind in STREAMED:
            return await _stream(call)
        return await _forward(call, forward)
    except Refused as refused:
        return refused.response()
