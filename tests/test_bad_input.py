"""The bad-input corpus: what a careless person or an attacker types into every form and API, one row a
case. Each answer must be a 4xx with the reason, or the form again with the error beside the field,
never a 500 and never silence. Through Django's test client (the gateway's bad requests are answered
before any engine is asked, so the client reaches them too).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.endpoints.models import Endpoint
from apps.endpoints.services import api_key_create
from apps.jobs.models import Draft, Job, Kind, Status
from apps.jobs.services import job_create
from apps.projects.services import project_create
from apps.synthetic.models import GeneratedRow
from tests.factories import PASSWORD, UserFactory
from workers.training import tiny

pytestmark = pytest.mark.django_db

SFT = str(tiny.DEMO / "reverse" / "sft.jsonl")


@dataclass
class Stage:
    """Alice, logged in, in her project, with one of everything a form can point at."""

    client: Client
    alice: User
    project: Any
    training: Job
    rows_job: Job
    row: GeneratedRow
    endpoint: Endpoint
    key: str

    def url(self, name: str, **kwargs: Any) -> str:
        return reverse(name, kwargs={"project_id": self.project.pk, **kwargs})


@pytest.fixture
def stage(db, client) -> Stage:
    alice = cast(User, UserFactory(username="alice"))
    cast(User, UserFactory(username="bob"))
    project = project_create(user=alice, name="Support bot")
    training = job_create(project=project, user=alice, name="sft", auto_evaluate=False,
                          spec={"technique": "sft", "model": "base-model", "dataset": SFT, "eval_dataset": SFT})  # fmt: skip
    Job.objects.filter(pk=training.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now(),
                                              artifacts={"model": "/nonexistent/model"})  # fmt: skip
    teacher = {"base_url": "https://teacher.example/v1", "model": "t"}
    root = job_create(project=project, user=alice, name="generation", kind=Kind.SYNTHESIS, auto_evaluate=False,
                      spec={"technique": "sft", "description": "d", "rows": 2, "teacher": teacher, "stage": "topics"})  # fmt: skip
    rows_job = job_create(project=project, user=alice, name="rows", kind=Kind.SYNTHESIS, parent=root, auto_evaluate=False,
                          spec={**root.spec, "stage": "all", "topics": [{"name": "t", "subtopics": []}]})  # fmt: skip
    Job.objects.filter(pk__in=[root.pk, rows_job.pk]).update(
        status=Status.SUCCEEDED, finished_at=timezone.now()
    )
    row = GeneratedRow.objects.create(job=rows_job, index=0, topic="t", data={"prompt": "p", "completion": "c"},
                                      original={"prompt": "p", "completion": "c"})  # fmt: skip
    endpoint = Endpoint.objects.create(project=project, created_by=alice, name="support", base="base-model")
    _, key = api_key_create(project=project, user=alice, name="app")
    # The wizard, past its model and data steps: each step's form is reachable.
    Draft.objects.create(project=project, user=alice, data={"model": "/nonexistent/model", "label": "m",
                                                            "dataset": SFT, "dataset_label": "sft.jsonl"})  # fmt: skip
    client.force_login(alice)
    return Stage(client=client, alice=alice, project=project, training=Job.objects.get(pk=training.pk),
                 rows_job=rows_job, row=row, endpoint=endpoint, key=key)  # fmt: skip


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# A case: how to send it (a function of the stage that returns the response) and what must come back.
Send = Callable[[Stage], Any]


@dataclass
class Case:
    id: str
    send: Send
    message: str  # a regular expression the answer must contain (after HTML unescaping)
    statuses: tuple[int, ...] = (200, 400, 422)
    waits_for: str = ""  # the part of issue 15 whose branch makes this case pass, when it is not this one
    anywhere: bool = False  # the reason is in the page's own report (a table of checks), not a form error


def _ids(s: Stage, kwargs: dict[str, Any]) -> dict[str, Any]:
    """URL arguments that name the stage's objects ("training", "rows", "endpoint", "row") as their ids."""
    ids = {"training": s.training.pk, "rows": s.rows_job.pk, "root": s.rows_job.generation_root.pk,
           "endpoint": s.endpoint.pk, "row": s.row.pk}  # fmt: skip
    return {k: ids.get(v, v) for k, v in kwargs.items()}


def post(
    name: str, data: dict[str, Any] | Callable[[], dict[str, Any]], follow: bool = False, **kwargs: Any
) -> Send:
    def send(s: Stage) -> Any:
        body = data() if callable(data) else data
        return s.client.post(s.url(name, **_ids(s, kwargs)), body, follow=follow)

    return send


def job_post(name: str, data: dict[str, Any], follow: bool = True, **kwargs: Any) -> Send:
    """A POST to a route about one of alice's jobs, following its redirect to the page with the message."""
    return post(name, data, follow, **kwargs)


def wizard_data(follow: bool = False, **files_and_fields: Any) -> Send:
    def send(s: Stage) -> Any:
        fields = {"eval_choice": "auto", **files_and_fields}
        fields = {k: (v() if callable(v) else v) for k, v in fields.items()}
        return s.client.post(s.url("wizard-data"), fields, follow=follow)

    return send


def technique(name: str = "sft", **fields: Any) -> Send:
    def send(s: Stage) -> Any:
        return s.client.post(s.url("wizard-technique"), {"technique": name, "t-method": "lora", **fields})

    return send


def evaluation(**fields: Any) -> Send:
    def send(s: Stage) -> Any:
        base = {"candidate": s.training.pk, "baseline": "base", "dataset": "heldout", "graders": ["exact_match"],
                "max_rows": 50, "max_new_tokens": 32}  # fmt: skip
        return s.client.post(s.url("evaluation-list"), {**base, **fields})

    return send


def generation(**fields: Any) -> Send:
    def send(s: Stage) -> Any:
        # A local teacher, the built-in model by its name: valid without asking any server (a URL teacher
        # is probed by a worker), so each case fails for its own reason alone.
        base = {"technique": "sft", "description": "Answer support tickets.", "rows": 10, "teacher": "local",
                "teacher_local": "atelier-tiny/partial"}  # fmt: skip
        data = {**base, **fields}
        return s.client.post(s.url("generation-new"), {k: v for k, v in data.items() if v is not None})

    return send


def gateway(route: str, body: Any, auth: str | None = "key", raw: bytes | None = None) -> Send:
    def send(s: Stage) -> Any:
        headers = {"Authorization": f"Bearer {s.key if auth == 'key' else auth}"} if auth else {}
        data = raw if raw is not None else json.dumps(body)
        return s.client.post(f"/v1/{route}", data, content_type="application/json", headers=headers)

    return send


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "support", "messages": [{"role": "user", "content": "hi"}], **fields}


def plain(name: str, data: dict[str, Any], follow: bool = False, method: str = "post") -> Send:
    """A route of no project."""

    def send(s: Stage) -> Any:
        return getattr(s.client, method)(reverse(name), data, follow=follow)

    return send


def anonymous(name: str, data: dict[str, Any]) -> Send:
    def send(s: Stage) -> Any:
        return Client().post(reverse(name), data)

    return send


def staff(name: str, data: dict[str, Any]) -> Send:
    def send(s: Stage) -> Any:
        client = Client()
        client.force_login(cast(User, UserFactory(username="root", is_staff=True)))
        return client.post(reverse(name), data)

    return send


def member_post(name: str, data: dict[str, Any]) -> Send:
    def send(s: Stage) -> Any:
        membership = s.project.memberships.get(user=s.alice)
        return s.client.post(s.url(name, membership_id=membership.pk), data, follow=True)

    return send


# A worker variable's name refused as a key: a key is a choice of the project's secrets, so the name
# is said back as no choice of them.
PATH_REFUSED = r"Select a valid choice\. PATH is not one of the available choices"
# Only a scheme-less hub id or an http(s) address on the hub is a model: other schemes are named back.
FILE_SCHEME = r"“file:” addresses are not models"
# A judge that the outbound policy allows without a lookup (a public address): only its key is at fault.
PUBLIC_JUDGE = "https://93.184.216.34/v1"
REQUIRED = "This field is required"
NOT_HERE = "There is no such page, or it belongs to a project you are not a member of"
NUMBER = "Enter a number"
WHOLE = "Enter a whole number"
CHOICE = "Select a valid choice"
MODEL_PATHS = "model paths (ATELIER_MODEL_DIRS, file:// ids, local folders)"
BOUNDS = "the evaluation form's json_schema/regex bounds"
OUTBOUND = "project secrets and judge/teacher URLs (outbound requests)"
SECRETS = "project secrets (API keys typed into the project, not worker variables)"
VIEWERS = "viewers in the playground and messages for a viewer's refused actions"
ROWS = "\n".join(f'{{"prompt": "{w}", "completion": "{w[::-1]}"}}' for w in ("cat", "dog", "bird"))

CASES = [
    # The wizard's model step.
    Case("model: nothing chosen", post("wizard-model", {"source": ""}), "Choose a model", (422,)),
    Case("model: hub without an id", post("wizard-model", {"source": "hub", "hub_id": ""}), "Type a Hugging Face model id", (422,)),
    Case("model: hub id with spaces", post("wizard-model", {"source": "hub", "hub_id": "not a model id!!"}), "is not a Hugging Face model id", (422,)),
    Case("model: hub id climbing folders", post("wizard-model", {"source": "hub", "hub_id": "../../etc/passwd"}), "is not a Hugging Face model id", (422,)),
    Case("model: hub id of 300 characters", post("wizard-model", {"source": "hub", "hub_id": "a/" + "b" * 298}), "at most 200 characters", (422,)),
    Case("model: a file:// id", post("wizard-model", {"source": "hub", "hub_id": "file:///etc/passwd"}), FILE_SCHEME, (422,)),
    Case("model: local without a folder", post("wizard-model", {"source": "local", "local_path": "  "}), "Type the folder that holds the model", (422,)),
    Case("model: local folder that is not there", post("wizard-model", {"source": "local", "local_path": "/no/such/folder"}), "/no/such/folder", (422,)),
    Case("model: the data folder as a model", post("wizard-model", {"source": "local", "local_path": "/etc"}), "/etc", (422,)),
    # A missing job answers as another project's job does: a 404, which tells nothing about other projects.
    Case("model: a job that does not exist", post("wizard-model", {"source": "job:987654"}), "There is no such page, or it belongs to a project you are not a member of", (404,), anywhere=True),
    Case("model: a job of the project without a model", lambda s: s.client.post(s.url("wizard-model"), {"source": f"job:{s.rows_job.pk}"}), "That job has no trained model", (422,)),
    Case("model: a job id that is not a number", post("wizard-model", {"source": "job:abc"}), "That job has no trained model", (422,)),
    Case("model: an empty catalog entry", post("wizard-model", {"source": "catalog:"}), "Type a Hugging Face model id", (422,)),
    Case("model: a NUL character", post("wizard-model", {"source": "hub", "hub_id": "a\x00b"}), "Null characters are not allowed", (422,)),
    # The wizard's data step: uploads and choices.
    Case("data: nothing chosen", wizard_data(), "Choose a dataset or upload one", (422,)),
    Case("data: an empty file", wizard_data(file=lambda: upload("empty.jsonl", b"")), "The submitted file is empty|is empty", (422,)),
    Case("data: malformed JSONL", wizard_data(file=lambda: upload("bad.jsonl", b'{"prompt": \n')), "line 1", (422,)),
    Case("data: a JSONL line that is a list", wizard_data(file=lambda: upload("list.jsonl", b'["prompt", "completion"]\n')), "line 1|object", (422,)),
    Case("data: binary garbage", wizard_data(file=lambda: upload("garbage.jsonl", bytes(range(256)) * 40)), "not a text file", (422,)),
    Case("data: UTF-16 that is not text", wizard_data(file=lambda: upload("utf16.jsonl", b"\xff\xfe" + bytes(range(256)))), "not a text file|could be read", (422,)),
    Case("data: a 10 MB single line", wizard_data(file=lambda: upload("long.jsonl", b"x" * 10 * 1024**2)), "line 1|could not be read", (422,)),
    Case("data: a Parquet file that is not Parquet", wizard_data(file=lambda: upload("fake.parquet", b"PAR1 not really")), "could not be read|Parquet", (422,)),
    Case("data: a Hugging Face id not on this machine", wizard_data(hub_id="acme/not-here-xyz"), "“acme/not-here-xyz” is not on this machine", (422,)),
    Case("data: a Hugging Face id that is a path", wizard_data(hub_id="../../etc/passwd"), "is not a Hugging Face dataset id", (422,)),
    Case("data: a CSV with only a header", wizard_data(file=lambda: upload("header.csv", b"prompt,completion\n")), "is empty|no rows", (422,)),
    Case("data: an .exe", wizard_data(file=lambda: upload("model.exe", b"MZ")), "reads .jsonl, .json, .csv, .tsv and .parquet", (422,)),
    Case("data: wrong columns", wizard_data(True, file=lambda: upload("cols.csv", b"question,reply\nq,r\n")), "A SFT dataset needs the columns messages or prompt/completion; this one has question, reply", anywhere=True),
    Case("data: a dataset id that is not a number", wizard_data(dataset="dataset:abc"), "Choose a dataset or upload one", (422,)),
    Case("data: a demo key climbing folders", wizard_data(dataset="demo:../../etc/passwd"), "Choose a dataset or upload one", (422,)),
    Case("data: an eval file that is not chosen", wizard_data(dataset="demo:reverse/sft.jsonl", eval_choice="file", eval_dataset=""), "Choose the eval file", (422,)),
    Case("data: an unknown evaluation choice", wizard_data(dataset="demo:reverse/sft.jsonl", eval_choice="everything"), CHOICE, (422,)),
    Case("data: a column name of 300 characters", wizard_data(dataset="demo:reverse/sft.jsonl", map_prompt="x" * 300), "at most 200 characters", (422,)),
    # The wizard's technique step: hyperparameters.
    Case("technique: learning rate not a number", technique(**{"t-learning_rate": "fast"}), NUMBER, (422,)),
    Case("technique: learning rate NaN", technique(**{"t-learning_rate": "nan"}), NUMBER, (422,)),
    Case("technique: learning rate inf", technique(**{"t-learning_rate": "inf"}), NUMBER, (422,)),
    Case("technique: learning rate huge", technique(**{"t-learning_rate": "1e308"}), "less than or equal to 0.1", (422,)),
    Case("technique: negative steps", technique(**{"t-max_steps": "-5"}), "greater than or equal to 1", (422,)),
    Case("technique: 10^30 steps", technique(**{"t-max_steps": "1" + "0" * 30}), "less than or equal to 100000", (422,)),
    Case("technique: steps as a fraction", technique(**{"t-max_steps": "2.5"}), WHOLE, (422,)),
    Case("technique: batch of zero", technique(**{"t-batch_size": "0"}), "greater than or equal to 1", (422,)),
    Case("technique: a LoRA rank vLLM cannot serve", technique(**{"t-lora_rank": "7"}), CHOICE, (422,)),
    Case("technique: an unknown method", technique(**{"t-method": "magic"}), CHOICE, (422,)),
    Case("technique: 100 replicas", technique(**{"t-resilient": "on", "t-max_replicas": "100"}), "less than or equal to 16", (422,)),
    Case("technique: DPO beta below its bound", technique("dpo", **{"p-beta": "-1"}), "greater than or equal to 0.001", (422,)),
    Case("technique: DPO on SFT rows", technique("dpo"), "do not fit DPO|rejected|chosen", (422,)),
    Case("technique: RLVR grader options not JSON", technique("rlvr", **{"p-graders": ["json_schema"], "p-json_schema_schema": "{not json"}), "This is not valid JSON", (422,)),
    Case("technique: RLVR with 1,000,000 generations", technique("rlvr", **{"p-num_generations": "1000000"}), "less than or equal to 64", (422,)),
    # The RLAIF judge chosen from the project's endpoints: by id, and only the project's (another id is a 404).
    Case("technique: a judge endpoint id that is not a number", technique("rlaif", **{"p-judge_endpoint": "abc"}), CHOICE, (422,)),
    Case("technique: another project's endpoint as judge", technique("rlaif", **{"p-judge_endpoint": "987654"}), NOT_HERE, (404,), anywhere=True),
    Case("technique: an endpoint judge and a URL judge at once", lambda s: technique("rlaif", **{"p-judge_endpoint": s.endpoint.pk, "p-judge_url": PUBLIC_JUDGE, "p-judge_model": "j"})(s), "Choose the judge once", (422,)),
    Case("try: graders of SFT", post("wizard-try", {"technique": "sft"}), "Choose RLVR or RLAIF", (200,)),
    # The evaluation form.
    Case("evaluation: no model", evaluation(candidate=""), REQUIRED, (422,)),
    Case("evaluation: a model id that is not a number", evaluation(candidate="abc"), CHOICE, (422,)),
    Case("evaluation: another project's job", evaluation(candidate="987654"), CHOICE, (422,)),
    Case("evaluation: zero rows", evaluation(max_rows="0"), "greater than or equal to 1", (422,)),
    Case("evaluation: rows NaN", evaluation(max_rows="nan"), WHOLE, (422,)),
    Case("evaluation: a billion tokens", evaluation(max_new_tokens="1000000000"), "less than or equal to 8192", (422,)),
    Case("evaluation: regex grader without a pattern", evaluation(graders=["regex"]), "regex grader needs this", (422,)),
    Case("evaluation: a regex that does not compile", evaluation(graders=["regex"], regex_pattern="("), r"missing \)|unterminated|not a valid (regular expression|regex)|does not compile", (422,), BOUNDS),
    Case("evaluation: a JSON schema that is not JSON", evaluation(graders=["json_schema"], json_schema_schema="{oops"), "not valid JSON", (422,)),
    Case("evaluation: a 200,000-deep JSON schema", evaluation(graders=["json_schema"], json_schema_schema=nested(200_000)), "This is over 64 KB", (422,), BOUNDS),
    Case("evaluation: a 1,000-deep JSON schema under 64 KB", evaluation(graders=["json_schema"], json_schema_schema=nested(1_000)), r"nests deeper than \d+ levels", (422,), BOUNDS),
    Case("evaluation: an unknown grader", evaluation(graders=["telepathy"]), CHOICE, (422,)),
    Case("evaluation: an unknown baseline", evaluation(baseline="yesterday"), "Choose the base model or a finished job", (422,)),
    Case("evaluation: an unknown dataset", evaluation(dataset="../../etc/passwd"), "Choose the job's held-out rows", (422,)),
    Case("evaluation: a judge without a model", evaluation(judge_url="https://judge.example/v1"), "needs both its URL and its model", (422,)),
    Case("evaluation: a judge URL that is not a URL", evaluation(judge_url="javascript:alert(1)", judge_model="j"), "Only http:// and https:// URLs can be used", (422,), OUTBOUND),
    Case("evaluation: an ftp:// judge", evaluation(judge_url="ftp://judge.example/v1", judge_model="j"), r"http\(s\)|http or https|https? only|only https?", (422,), OUTBOUND),
    Case("evaluation: the metadata address as judge", evaluation(judge_url="http://169.254.169.254/v1", judge_model="j"), r"169\.254\.169\.254.{0,120}(not allowed|refused|link-local|metadata|internal)|(not allowed|refused|link-local|metadata|internal).{0,120}169\.254", (422,), OUTBOUND),
    Case("evaluation: the worker's PATH as the judge's key", evaluation(judge_url=PUBLIC_JUDGE, judge_model="j", judge_key="PATH"), PATH_REFUSED, (422,), SECRETS),
    Case("evaluation: a judge endpoint id that is not a number", evaluation(judge_endpoint="abc"), CHOICE, (422,)),
    Case("evaluation: another project's endpoint as judge", evaluation(judge_endpoint="987654"), NOT_HERE, (404,), anywhere=True),
    Case("evaluation: an endpoint judge and a URL judge at once", lambda s: evaluation(judge_endpoint=s.endpoint.pk, judge_url=PUBLIC_JUDGE, judge_model="j")(s), "Choose the judge once", (422,)),
    # Generate data.
    Case("generate: nothing filled in", post("generation-new", {"technique": "", "description": "", "rows": "", "teacher": ""}), REQUIRED, (200, 422)),
    Case("generate: zero rows", generation(rows="0"), "Ask for at least 1 row", (200, 422)),
    Case("generate: a trillion rows", generation(rows=str(10**12)), "At most", (200, 422)),
    Case("generate: rows as words", generation(rows="many"), WHOLE, (200, 422)),
    Case("generate: a description of 5,000 characters", generation(description="x" * 5000), "at most 2000 characters", (200, 422)),
    Case("generate: a URL teacher without a URL", generation(teacher="url", teacher_model="t"), "Give the teacher's base URL", (200, 422)),
    Case("generate: a teacher URL that is javascript:", generation(teacher="url", teacher_url="javascript:alert(1)", teacher_model="t"), "Only http:// and https:// URLs can be used", (200, 422), OUTBOUND),
    Case("generate: a teacher without a model name", generation(teacher="url", teacher_url="https://teacher.example/v1"), "Give the model's name at that URL", (200, 422)),
    Case("generate: an endpoint teacher without an endpoint", generation(teacher="endpoint"), "Choose one of this project's endpoints", (200, 422)),
    Case("generate: an endpoint id that is not a number", generation(teacher="endpoint", teacher_endpoint="abc"), CHOICE, (200, 422)),
    Case("generate: a local teacher without a model", generation(teacher="local", teacher_local=""), "Give a model folder or Hugging Face id", (200, 422)),
    Case("generate: seeds that are not JSON", generation(seeds="prompt: hello"), "Seed line 1 is not valid JSON", (200, 422)),
    Case("generate: seeds without the technique's columns", generation(seeds='{"question": "q"}'), "Seed line 1: missing prompt", (200, 422)),
    Case("generate: an unknown technique", generation(technique="ppo"), CHOICE, (200, 422)),
    Case("generate: a document that is an .exe", generation(documents=upload("tool.exe", b"MZ")), "tool.exe: documents can be", (200, 422)),
    # The key is a choice of the project's secrets whatever the teacher; a local teacher keeps a worker's
    # probe of a URL teacher out of the answer, so only the key is at fault.
    Case("generate: the worker's PATH as the teacher's key", generation(teacher_key="PATH"), PATH_REFUSED, (200, 422), SECRETS),
    # A generation's topics, rows and saving.
    Case("topics: none", job_post("generation-detail", {"topics": "", "rows": "5"}, follow=False, job_id="root"), REQUIRED, (200, 422)),
    Case("topics: zero rows", job_post("generation-detail", {"topics": "a", "rows": "0"}, follow=False, job_id="root"), "greater than or equal to 1", (200, 422)),
    Case("rows: an unknown verdict", job_post("generation-rows", {"verdict": "maybe", "scope": "all"}, job_id="rows"), "Accept or reject"),
    Case("row: an edit that empties a field", job_post("generation-row-edit", {"prompt": " ", "completion": "c"}, follow=False, job_id="rows", row_id="row"), "cannot be empty"),
    Case("save: no accepted rows", job_post("generation-save", {"name": "mine"}, job_id="rows"), "Accept at least one row first"),
    # Jobs, deploying, endpoints and API keys.
    Case("job: move sideways", job_post("job-action", {"direction": "sideways"}, job_id="training", action="move"), "Only a waiting job can be moved"),
    Case("job: cancel a finished job", job_post("job-action", {}, job_id="training", action="cancel"), "is nothing to cancel"),
    Case("deploy: no model", post("endpoint-list", {"model": ""}), REQUIRED),
    Case("deploy: a folder that is not there", post("endpoint-list", {"model": "/no/such/folder"}), "/no/such/folder"),
    Case("deploy: a name that is not a slug", post("endpoint-list", {"model": "partial", "name": "not a slug!"}), "slug"),
    Case("deploy: a file:// model", post("endpoint-list", {"model": "file:///etc/passwd"}), FILE_SCHEME, (200, 422)),
    Case("deploy: an unknown catalog entry", post("model-deploy", {"source": "catalog:"}, follow=True), "Type a Hugging Face model id|Choose a model"),
    Case("deploy: a job without a model", job_post("job-deploy", {}, job_id="training"), "no longer on disk|has a model to deploy"),
    Case("push: no repository", post("endpoint-push", {"repo_id": "", "token": ""}, follow=True, endpoint_id="endpoint"), "Nothing of that kind to push"),
    Case("key: no name", post("api-key-new", {"name": ""}, follow=True), "Give the key a name"),
    Case("key: a name of 500 characters", post("api-key-new", {"name": "k" * 500}, follow=True), "at most 100 characters"),
    # The gateway.
    Case("gateway: no key", gateway("chat/completions", chat(), auth=None), "You didn't provide an API key", (401,)),
    Case("gateway: a wrong key", gateway("chat/completions", chat(), auth="atl-wrong-key-0123456789"), "Incorrect API key", (401,)),
    Case("gateway: malformed JSON", gateway("chat/completions", None, raw=b'{"model": '), "not valid JSON", (400,)),
    Case("gateway: a body that is not UTF-8", gateway("chat/completions", None, raw=b'{"model": "\xff"}'), "not valid JSON", (400,)),
    Case("gateway: a JSON list", gateway("chat/completions", [chat()]), "must be a JSON object", (400,)),
    Case("gateway: a 100,000-deep body", gateway("chat/completions", None, raw=nested(100_000).encode()), "not valid JSON|deep|nest", (400,)),
    Case("gateway: no model", gateway("chat/completions", {"messages": [{"role": "user", "content": "hi"}]}), "model", (400, 404)),
    Case("gateway: an unknown model", gateway("chat/completions", chat(model="gpt-9")), "gpt-9", (404,)),
    Case("gateway: messages as a string", gateway("chat/completions", chat(messages="hi")), "`messages` must be a non-empty list", (400,)),
    Case("gateway: a message of an unknown role", gateway("chat/completions", chat(messages=[{"role": "wizard", "content": "hi"}])), "role", (400,)),
    Case("gateway: huge max_tokens", gateway("chat/completions", chat(max_tokens=10**12)), "max_tokens", (400,)),
    Case("gateway: max_tokens as a word", gateway("chat/completions", chat(max_tokens="ten")), "`max_tokens` must be a whole number", (400,)),
    Case("gateway: negative temperature", gateway("chat/completions", chat(temperature=-1)), "temperature", (400,)),
    Case("gateway: temperature NaN", gateway("chat/completions", None, raw=b'{"model": "support", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'), "temperature", (400,)),
    Case("gateway: temperature as a word", gateway("chat/completions", chat(temperature="hot")), "`temperature` must be a number", (400,)),
    Case("gateway: top_p of 5", gateway("chat/completions", chat(top_p=5)), "top_p", (400,)),
    Case("gateway: a completion without a prompt", gateway("completions", {"model": "support"}), "`prompt` must be a string", (400,)),
    Case("gateway: a body over the limit", gateway("completions", None, raw=json.dumps({"model": "support", "prompt": "x" * 3_000_000}).encode()), "larger than", (413,)),
    Case("gateway: an unknown route", gateway("embeddings", {"model": "support", "input": "hi"}), "has no /v1/embeddings", (404,)),
    Case("gateway: GET on chat", lambda s: s.client.get("/v1/chat/completions"), "Use POST", (405,)),
    # Projects and members.
    Case("project: no name", plain("project-list", {"name": ""}), "Give the project a name", (422,)),
    Case("project: a name of spaces", plain("project-list", {"name": "    "}), "Give the project a name", (422,)),
    Case("project: a name of 500 characters", plain("project-list", {"name": "p" * 500}), "A project name has at most", (422,)),
    Case("member: an unknown user", post("project-members", {"username": "nobody-here", "role": "member"}), "nobody-here|No user|no account", (422,)),
    Case("member: an unknown role", post("project-members", {"username": "bob", "role": "god"}), CHOICE, (422,)),
    Case("member: alice twice", post("project-members", {"username": "alice", "role": "member"}), "already", (422,)),
    Case("member: an unknown role on a change", member_post("project-member-role", {"role": "god"}), "Choose owner, member or viewer"),
    Case("member: the last owner steps down", member_post("project-member-role", {"role": "viewer"}), "A project needs at least one owner"),
    Case("member: the last owner leaves", member_post("project-member-remove", {}), "A project needs at least one owner"),
    # Invitations and accounts.
    Case("invitation: an email that is not one", staff("invitation-list", {"email": "not-an-email", "role": "member"}), "Enter a valid email address", (422,)),
    Case("invitation: a project id that is not a number", staff("invitation-list", {"email": "c@example.com", "project": "abc", "role": "member"}), CHOICE, (422,)),
    Case("invitation: an unknown role", staff("invitation-list", {"email": "c@example.com", "role": "god"}), CHOICE, (422,)),
    Case("login: a wrong password", anonymous("login", {"username": "alice", "password": "wrong"}), "correct username and password", (200,)),
    Case("login: nothing typed", anonymous("login", {"username": "", "password": ""}), REQUIRED, (200,)),
    Case("password: the old one wrong", plain("password_change", {"old_password": "wrong", "new_password1": "a-new-passphrase", "new_password2": "a-new-passphrase"}), "old password was entered incorrectly", (200,)),
    Case("password: the two differ", plain("password_change", {"old_password": PASSWORD, "new_password1": "a-new-passphrase", "new_password2": "another-passphrase"}), "didn.t match", (200,)),
    Case("password: too short and common", plain("password_change", {"old_password": PASSWORD, "new_password1": "1234", "new_password2": "1234"}), "too short|too common", (200,)),
    Case("dataset list: a Hugging Face id not on this machine", post("dataset-list", {"hub_id": "acme/not-here-xyz"}), "“acme/not-here-xyz” is not on this machine", (422,)),
    Case("dataset list: a garbage upload", post("dataset-list", lambda: {"file": upload("garbage.csv", b"\xff\xfe\x00\x01" * 100)}), "not UTF-8|could not be read|no rows"),
]  # fmt: skip


def _body(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return html.unescape(response.content.decode(errors="replace"))


def test_the_corpus_has_at_least_60_cases_across_every_form_and_api():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    areas = {c.id.split(":")[0] for c in CASES}
    assert {"model", "data", "technique", "evaluation", "generate", "deploy", "key", "gateway", "project",
            "member", "invitation", "login", "password"} <= areas  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_reason_a_person_understands_and_never_a_500(case: Case, stage: Stage):
    response = case.send(stage)
    body = _body(response)
    assert response.status_code < 500, f"{case.id}: {response.status_code}\n{body[-2000:]}"
    assert response.status_code in case.statuses, (
        f"{case.id}: {response.status_code}, expected one of {case.statuses}"
    )
    assert re.search(case.message, _text(body) if case.anywhere else _error_text(body), re.IGNORECASE), (
        f"{case.id}: no /{case.message}/ in the answer's messages:\n{_text(body)[-1500:]}"
    )


def _error_text(body: str) -> str:
    """Where a reason is shown: a field's errors, an alert or a message, a JSON error; or the whole of
    a fragment or a JSON body. Matching there, not the whole page, keeps a help text from passing."""
    if body.lstrip().startswith("{"):
        return body
    if "<html" not in body:
        return _text(body)
    parts = re.findall(r'<ul class="errorlist.*?</ul>|<[^>]+role="alert"[^>]*>.*?</(?:div|p|li|section)>'
                       r'|<[^>]+class="(?:messages|alert|error)\b[^"]*"[^>]*>.*?</(?:div|p|ul)>', body, re.S)  # fmt: skip
    return " | ".join(_text(p) for p in parts)


def _text(body: str) -> str:
    """The answer's visible text, to show in a failure."""
    text = re.sub(r"<script.*?</script>|<style.*?</style>", "", body, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


@pytest.mark.parametrize(
    "send", [evaluation(), generation(), technique()], ids=["evaluation", "generate", "technique"]
)
def test_the_corpus_base_submissions_are_accepted_so_each_case_fails_for_its_own_reason(
    send: Send, stage: Stage
):
    response = send(stage)
    assert response.status_code == 302, _error_text(_body(response))
