"""The wizard through Django's test client: each step checks its input on the server, keeps it in the
draft, and shows a person what to fix beside the field at fault, losing nothing entered earlier."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.datasets.models import Dataset
from apps.jobs.models import Draft, Job, Status

pytestmark = pytest.mark.django_db


@pytest.fixture
def wizard(client, alice, alice_project, tiny_model, settings):
    settings.DATA_DIR = tiny_model.parent.parent  # the test data folder, where the tiny model is built
    client.force_login(alice)
    pid = alice_project.pk

    def url(step: str) -> str:
        return reverse(f"wizard-{step}", kwargs={"project_id": pid})

    return client, url, alice_project


def _model(client, url, source="partial"):
    return client.post(url("model"), {"source": source})


def _upload(client, url, name: str, content: bytes, **extra):
    return client.post(
        url("data"), {"file": SimpleUploadedFile(name, content), "eval_choice": "auto", **extra}
    )


def _sft_rows(n: int = 30) -> bytes:
    rows = [{"messages": [{"role": "user", "content": f"reverse: {' '.join(w)}"},
                          {"role": "assistant", "content": " ".join(reversed(w))}]}
            for w in (f"w{i:03d}" for i in range(n))]  # fmt: skip
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_the_whole_wizard_launches_a_job_with_the_choices_kept_in_the_draft(wizard):
    client, url, project = wizard
    assert _model(client, url).status_code == 302
    response = client.post(url("data"), {"dataset": "demo:reverse/sft.jsonl", "eval_choice": "file",
                                         "eval_dataset": "demo:reverse/eval.jsonl", "go": "check"})  # fmt: skip
    assert response.status_code == 302
    page = client.get(url("data")).content.decode()
    assert "4100 rows" in page and "&lt;|im_start|&gt;assistant" in page  # the chat-template preview
    assert client.post(url("data"), {"dataset": "demo:reverse/sft.jsonl", "eval_choice": "file",
                                     "eval_dataset": "demo:reverse/eval.jsonl", "go": "next"})["Location"].endswith("/technique/")  # fmt: skip
    page = client.get(url("technique")).content.decode()
    # 4,100 rows (the held-out rows come from their own file): 3 epochs / batch 16 = 769 steps, which
    # early stopping ends sooner; rank 16 for a model this small.
    assert 'placeholder="automatic: 769"' in page and "automatic (16)" in page
    response = client.post(url("technique"), {"technique": "sft", "t-method": "lora", "t-max_steps": "20",
                                              "p-completion_only_loss": "on"})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-3000:]
    review = client.get(url("review")).content.decode()
    assert "20 steps" in review and "queue <code>train-cpu</code>" in review and " GB (weights" in review
    response = client.post(url("review"), {"name": "my first job"})
    job = Job.objects.get()
    assert response["Location"] == reverse("job-detail", kwargs={"project_id": project.pk, "job_id": job.pk})
    assert job.name == "my first job" and job.status == Status.QUEUED and job.queue == "train-cpu"
    assert job.spec["training"]["max_steps"] == 20 and job.spec["eval_dataset"].endswith("eval.jsonl")
    assert job.spec["model"].endswith("atelier-tiny/partial")
    assert not Draft.objects.exists()


def test_coming_back_shows_what_was_chosen(wizard):
    client, url, _ = wizard
    _model(client, url, "base")
    response = client.get(reverse("wizard-start", kwargs={"project_id": wizard[2].pk}))
    assert response["Location"].endswith("/data/")
    assert 'value="base" checked' in client.get(url("model")).content.decode()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("binary.jsonl", bytes(range(256)), "binary.jsonl is not a text file"),
    ("broken.jsonl", b'{"prompt": oops}\n', "No line of broken.jsonl could be read as a row: 1 bad line in broken.jsonl: line 1 is not valid JSON"),
    ("empty.jsonl", b"", "is empty"),
    ("notes.txt", b"hello", "Atelier reads .jsonl, .json, .csv, .tsv and .parquet files"),
])  # fmt: skip
def test_a_bad_upload_gets_a_clear_message_on_the_data_step_and_the_model_is_kept(
    wizard, name, content, message
):
    client, url, _ = wizard
    _model(client, url)
    response = _upload(client, url, name, content)
    assert response.status_code == 422
    page = response.content.decode()
    assert message in page
    assert "Built-in tiny model (partial)" in page  # the model chosen before is still there


def test_an_upload_over_the_cap_is_refused_and_not_kept(wizard, settings):
    client, url, _ = wizard
    settings.DATASET_MAX_BYTES = 1000
    _model(client, url)
    before = set((settings.DATA_DIR / "projects").glob("*/datasets/*/*"))
    response = _upload(client, url, "big.jsonl", _sft_rows(100))
    assert (
        response.status_code == 422 and "big.jsonl is 11 KB; the limit is 1 KB." in response.content.decode()
    )
    assert set((settings.DATA_DIR / "projects").glob("*/datasets/*/*")) == before


def test_a_csv_without_the_needed_columns_is_stopped_at_the_technique_step(wizard):
    client, url, _ = wizard
    _model(client, url)
    assert _upload(client, url, "qa.csv", b"question,reply\nhi,hello\n", go="next").status_code == 302
    response = client.post(url("technique"), {"technique": "sft", "t-method": "lora"})
    assert response.status_code == 422
    assert (
        "needs the columns messages or prompt/completion; this one has question, reply"
        in response.content.decode()
    )


def test_several_columns_are_mapped_at_once_and_the_mapping_is_kept_with_that_dataset_only(wizard):
    """The mapping table: each needed column chooses a file column, several at once; saved with the
    dataset (its page and the next visit show it) and never applied to a later upload."""
    from apps.datasets.models import Dataset

    client, url, _ = wizard
    _model(client, url)
    assert _upload(client, url, "qa.csv", b"ask,reply\nhi,hello\n", go="check").status_code == 302
    dataset = Dataset.objects.get(name="qa.csv")
    assert not dataset.fits("sft")
    posted = {
        "dataset": f"dataset:{dataset.pk}",
        "eval_choice": "none",
        "map_prompt": "ask",
        "map_completion": "reply",
    }
    assert client.post(url("data"), {**posted, "go": "check"}).status_code == 302
    dataset.refresh_from_db()
    assert dataset.mapping == {"columns": {"prompt": "ask", "completion": "reply"}, "format": "auto"}
    assert dataset.fits("sft") and dataset.survey["format"] == "standard"
    page = client.get(url("data")).content.decode()
    assert '<option value="ask" selected>' in page and '<option value="reply" selected>' in page
    assert client.post(url("data"), {**posted, "go": "next"}).status_code == 302
    assert client.post(url("technique"), {"technique": "sft", "t-method": "lora"}).status_code == 302
    # Another file: its own (empty) mapping, whatever the table posted for the last one held
    assert (
        _upload(
            client, url, "other.jsonl", b'{"ask": "a", "reply": "b"}\n', map_prompt="ask", go="check"
        ).status_code
        == 302
    )
    assert Dataset.objects.get(name="other.jsonl").mapping == {}
    assert Draft.objects.get().data["column_map"] == {}


def test_a_column_the_file_does_not_have_is_refused_beside_the_table(wizard):
    client, url, _ = wizard
    _model(client, url)
    client.post(url("data"), {"dataset": "demo:reverse/sft.jsonl", "eval_choice": "auto", "go": "check"})
    response = client.post(url("data"), {"dataset": "demo:reverse/sft.jsonl", "eval_choice": "auto",
                                         "map_prompt": "question", "go": "check"})  # fmt: skip
    assert response.status_code == 422
    assert "The file has no column question: choose among messages." in response.content.decode()


def test_a_recognised_format_is_said_and_can_be_overridden(wizard):
    """A ShareGPT file is converted (its Data step a 500 before), said as such; choosing another format
    lists each row it cannot convert, and choosing ShareGPT again fits."""
    client, url, _ = wizard
    _model(client, url)
    row = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    assert (
        _upload(client, url, "chats.jsonl", (json.dumps(row) + "\n").encode() * 3, go="check").status_code
        == 302
    )
    page = client.get(url("data")).content.decode()
    assert (
        "<strong>ShareGPT</strong>: conversations (human → user, gpt → assistant, system → system) → messages"
        in page
    )
    assert "&lt;|im_start|&gt;user\nhi&lt;|im_end|&gt;" in page  # the preview, through the chat template
    key = Draft.objects.get().data["dataset_key"]
    assert (
        client.post(
            url("data"), {"dataset": key, "eval_choice": "none", "format": "alpaca", "go": "check"}
        ).status_code
        == 302
    )
    page = client.get(url("data")).content.decode()
    assert page.count("“instruction” is empty") >= 3 and "3 lines could not be read" in page
    assert (
        client.post(
            url("data"), {"dataset": key, "eval_choice": "none", "format": "sharegpt", "go": "next"}
        ).status_code
        == 302
    )
    assert client.post(url("technique"), {"technique": "sft", "t-method": "lora"}).status_code == 302


def test_numbers_in_text_columns_are_read_as_text_and_said(wizard):
    client, url, _ = wizard
    _model(client, url)
    buffer = io.BytesIO()
    pq.write_table(pa.table({"prompt": [1, 2, 3], "completion": [4, 5, 6]}), buffer)
    assert _upload(client, url, "numbers.parquet", buffer.getvalue(), go="check").status_code == 302
    page = client.get(url("data")).content.decode()
    assert "3 rows have numbers in text columns; they are read as text." in page
    assert "pydantic" not in page and "&lt;|im_start|&gt;user\n1&lt;|im_end|&gt;" in page


def test_an_unknown_hugging_face_id_or_folder_gets_a_message_beside_its_field(wizard):
    client, url, _ = wizard
    page = client.post(url("model"), {"source": "hub", "hub_id": "nobody/no-such-model"}).content.decode()
    assert "nobody/no-such-model" in page and ("cannot be reached" in page or "has no model" in page)
    page = client.post(url("model"), {"source": "local", "local_path": "/nowhere/model"}).content.decode()
    assert "No model folder at /nowhere/model among the folders this server offers." in page
    assert not Draft.objects.get().data.get("model")


def test_hyperparameters_out_of_bounds_are_refused_beside_their_fields(wizard):
    client, url, _ = wizard
    _model(client, url)
    client.post(url("data"), {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "none", "go": "next"})
    response = client.post(url("technique"), {"technique": "rlvr", "t-method": "lora", "t-learning_rate": "5",
                                              "p-num_generations": "1", "p-graders": ["exact_match"]})  # fmt: skip
    assert response.status_code == 422
    page = response.content.decode()
    assert "Ensure this value is less than or equal to 0.1" in page
    assert "Ensure this value is greater than or equal to 2" in page
    assert Draft.objects.get().data["dataset"].endswith("rlvr.jsonl")  # the data step is kept


@pytest.mark.parametrize(("grader", "field", "typed", "message"), [
    ("regex", "regex_pattern", "(", "This is not a valid regular expression: missing ), unterminated subpattern"),
    ("regex", "regex_pattern", "", "The regex grader needs this."),
    ("json_schema", "json_schema_schema", '{"type": "nope"}', "This is not a valid JSON schema (at type)"),
    ("json_schema", "json_schema_schema", "[" * 200_000, "This is over 64 KB"),
    ("json_schema", "json_schema_schema", '{"not": ' * 40 + "{}" + "}" * 40, "This nests deeper than 32 levels."),
    ("json_schema", "json_schema_schema", "{not json", "This is not valid JSON"),
])  # fmt: skip
def test_rlvr_grader_options_that_cannot_work_are_refused_beside_the_field(
    wizard, grader, field, typed, message
):
    """The same generated fields as the evaluation form's (apps.core.forms.grader_option_fields)."""
    from tests.evaluations.test_form import beside

    client, url, _ = wizard
    _model(client, url)
    client.post(url("data"), {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "none", "go": "next"})
    response = client.post(url("technique"), {"technique": "rlvr", "t-method": "lora", "p-num_generations": "4",
                                              "p-graders": [grader], f"p-{field}": typed})  # fmt: skip
    assert response.status_code == 422
    assert beside(response.content.decode(), f"p-{field}", message)


def test_rlvr_grader_options_typed_in_their_fields_reach_the_draft_and_come_back(wizard):
    client, url, _ = wizard
    _model(client, url)
    client.post(url("data"), {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "none", "go": "next"})
    schema = {"type": "string"}
    response = client.post(url("technique"), {
        "technique": "rlvr", "t-method": "lora", "p-graders": ["regex", "json_schema"],
        "p-regex_pattern": "[a-z ]+", "p-json_schema_schema": json.dumps(schema), "p-python_code": "ignored",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    options = Draft.objects.get().data["params"]["grader_options"]
    assert options == {
        "regex": {"pattern": "[a-z ]+"},
        "json_schema": {"schema": schema},
    }  # python not chosen
    page = client.get(url("technique") + "?technique=rlvr").content.decode()
    assert 'name="p-regex_pattern"' in page and 'value="[a-z ]+"' in page


def test_the_graders_are_tried_on_a_few_rows_before_launch(wizard):
    client, url, project = wizard
    _model(client, url)
    client.post(url("data"), {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "none", "go": "next"})
    code = "def grade(completion, answer):\n    open('/etc/hacked', 'w')\n    return 1.0\n"
    response = client.post(reverse("wizard-try", kwargs={"project_id": project.pk}), {
        "technique": "rlvr", "p-graders": ["exact_match", "python"], "p-num_generations": "4",
        "p-python_code": code,
    })  # fmt: skip
    page = response.content.decode()
    assert page.count("exact_match: <strong>") == 4 and page.count("python: <strong>0.00</strong>") == 4
    assert "reverse: n e e d" in page and "Read-only file system" in page


def test_trying_a_judge_that_cannot_be_reached_says_so_per_row(wizard):
    client, url, project = wizard
    _model(client, url)
    client.post(url("data"), {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "none", "go": "next"})
    response = client.post(reverse("wizard-try", kwargs={"project_id": project.pk}), {
        "technique": "rlaif", "p-judge_url": "http://127.0.0.1:9/v1", "p-judge_model": "m", "p-num_generations": "4",
    })  # fmt: skip
    page = response.content.decode()
    assert (
        page.count("judge: <strong>0.00</strong>") == 4
        and "the judge&#x27;s answer could not be used" in page
    )


@pytest.mark.parametrize(
    ("method", "technique", "low", "high", "error"),
    [
        ("full", "sft", 1, 3, None),
        ("lora", "sft", "", "", None),
        ("qlora", "sft", 1, 3, "trains with lora or full"),
        ("full", "sft", 3, 2, "1 ≤ minimum ≤ maximum"),
        ("lora", "dpo", 1, 2, "available for SFT"),
    ],
)
def test_resilience_on_the_technique_step_is_checked_beside_its_field(method, technique, low, high, error):
    from apps.jobs.wizard import TrainingForm

    form = TrainingForm({"t-method": method, "t-resilient": "on", "t-min_replicas": low, "t-max_replicas": high},
                        prefix="t")  # fmt: skip
    assert form.is_valid(), form.errors
    resilience = form.resilience(technique)
    if error is None:
        assert resilience == {"min_replicas": low or 1, "max_replicas": high or 2} and not form.errors
    else:
        assert resilience is None and error in form.errors["resilient"][0]


@pytest.fixture
def unsafe_sandbox(monkeypatch):
    """A host whose sandbox fails its self-check: the sandbox user set to root, which it refuses."""
    from workers.training.graders.sandbox import SANDBOX_UID_ENV, sandbox_state

    monkeypatch.setenv(SANDBOX_UID_ENV, "0")
    sandbox_state.cache_clear()
    yield
    monkeypatch.delenv(SANDBOX_UID_ENV)
    sandbox_state.cache_clear()


def test_python_graders_are_refused_beside_the_choice_and_in_try_where_the_sandbox_is_unsafe(
    wizard, unsafe_sandbox
):
    client, url, project = wizard
    _model(client, url)
    client.post(url("data"), {"dataset": "demo:reverse/rlvr.jsonl", "eval_choice": "none", "go": "next"})
    assert (
        "Python graders are turned off on this server"
        in client.get(url("technique") + "?technique=rlvr").content.decode()
    )
    chosen = {"technique": "rlvr", "t-method": "lora", "p-num_generations": "4", "p-graders": ["exact_match", "python"],
              "p-python_code": "def grade(completion):\n    return 1.0\n"}  # fmt: skip
    response = client.post(url("technique"), chosen)
    assert response.status_code == 422
    assert "must be the number of an unprivileged user" in response.content.decode()
    assert "technique" not in Draft.objects.get().data
    tried = client.post(reverse("wizard-try", kwargs={"project_id": project.pk}), chosen).content.decode()
    assert "Python graders are turned off on this server" in tried


def test_dropping_bad_rows_carries_through_to_the_review_and_the_launch(wizard):
    """A JSONL with broken lines and a null: the good rows are kept, every bad line is listed, and with
    "Drop rows" ticked the review plans on the good rows and the launch writes only them (the review
    once re-read the file without dropping them, and Launch stayed disabled)."""
    client, url, _ = wizard
    _model(client, url)
    good = _sft_rows(40).decode().splitlines()
    lines = [
        *good[:10],
        '{"messages": "oops"',
        "[1, 2]",
        *good[10:20],
        '{"prompt": "x", "completion": null}',
        *good[20:],
    ]
    content = ("\n".join(lines) + "\n").encode()
    assert _upload(client, url, "mixed.jsonl", content, go="check").status_code == 302
    page = client.get(url("data")).content.decode()
    assert "2 lines could not be read" in page and "Unterminated" not in page
    assert (
        "is not valid JSON: Expecting &#x27;,&#x27; delimiter at column 20" in page
        and "is a list, not a JSON object" in page
    )
    key = Draft.objects.get().data["dataset_key"]
    assert client.post(url("data"), {"dataset": key, "eval_choice": "auto", "go": "next"}).status_code == 302
    response = client.post(url("technique"), {"technique": "sft", "t-method": "lora"})
    assert response.status_code == 422 and "3 rows of the dataset do not fit SFT" in response.content.decode()
    assert (
        client.post(
            url("data"), {"dataset": key, "eval_choice": "auto", "drop_bad": "on", "go": "next"}
        ).status_code
        == 302
    )
    assert client.post(url("technique"), {"technique": "sft", "t-method": "lora"}).status_code == 302
    page = client.get(url("review")).content.decode()
    assert 'data-testid="review-error"' not in page and "36 training rows" in page  # 40 good, 4 held out
    assert client.post(url("review"), {"name": "dropped"}).status_code == 302
    job = Job.objects.get(name="dropped")
    trained = Path(job.spec["dataset"]).read_text().splitlines()
    assert len(trained) == 36 and len(Path(job.spec["eval_dataset"]).read_text().splitlines()) == 4


def test_the_hold_out_rule_is_said_where_the_dataset_is_too_small(wizard):
    client, url, _ = wizard
    _model(client, url)
    assert _upload(client, url, "few.jsonl", _sft_rows(15), go="check").status_code == 302
    page = client.get(url("data")).content.decode()
    assert "Holding out 10% needs at least 20 rows; this dataset has fewer" in page
    assert _upload(client, url, "enough.jsonl", _sft_rows(20), go="check").status_code == 302
    assert "Holding out 10% needs" not in client.get(url("data")).content.decode()


def test_rows_longer_than_the_model_reads_are_listed_and_dropped_or_cut_to_fit(wizard):
    """The tiny model reads 2,048 tokens: a 200,000-character row is named by its line with its length;
    "Drop them" leaves it out of the launch, "Cut them to fit" (the default) keeps it cut at the end of
    its longest text, so that the review plans and the run trains (it refuses rows over its length)."""
    from apps.datasets.services import model_reader
    from apps.jobs.wizard import split_rows

    client, url, _ = wizard
    _model(client, url)
    rows = _sft_rows(25).decode().splitlines()
    rows.insert(3, json.dumps({"prompt": "x " * 100_000, "completion": "y"}))
    assert (
        _upload(client, url, "long.jsonl", ("\n".join(rows) + "\n").encode(), go="check").status_code == 302
    )
    page = client.get(url("data")).content.decode()
    assert "1 row is longer than the model reads" in page and "line 4 (" in page
    key = Draft.objects.get().data["dataset_key"]
    client.post(url("data"), {"dataset": key, "eval_choice": "none", "long_rows": "drop", "go": "next"})
    response = client.post(url("technique"), {"technique": "sft", "t-method": "lora"})
    assert response.status_code == 302, response.content.decode()[-3000:]
    train, _ = split_rows(Draft.objects.get())
    assert len(train) == 25 and all("x x x" not in json.dumps(r) for r in train)
    client.post(url("data"), {"dataset": key, "eval_choice": "none", "long_rows": "truncate", "go": "next"})
    assert client.post(url("technique"), {"technique": "sft", "t-method": "lora"}).status_code == 302
    train, _ = split_rows(Draft.objects.get())
    context, measure = model_reader(Draft.objects.get().data["model"])
    assert context is not None and measure is not None
    cut = next(r for r in train if str(r.get("prompt", "")).startswith("x x x"))
    assert len(train) == 26 and context - 64 < measure(cut) <= context and cut["completion"] == "y"
    page = client.get(url("review")).content.decode()
    assert 'data-testid="review-error"' not in page and "26 training rows" in page


def test_duplicates_and_near_duplicates_are_counted_and_dropped_in_one_click(wizard):
    from apps.jobs.wizard import split_rows

    client, url, _ = wizard
    _model(client, url)
    rows = [json.loads(line) for line in _sft_rows(24).decode().splitlines()]
    copy = json.loads(json.dumps(rows[0]))
    copy["messages"][0]["content"] = copy["messages"][0]["content"].upper() + "!"  # equal but for case
    content = "".join(json.dumps(r) + "\n" for r in [*rows, rows[1], rows[2], copy])
    assert _upload(client, url, "dups.jsonl", content.encode(), go="check").status_code == 302
    page = client.get(url("data")).content.decode()
    assert "2 duplicate rows" in page and "1 near duplicate" in page
    key = Draft.objects.get().data["dataset_key"]
    client.post(url("data"), {"dataset": key, "eval_choice": "none", "drop_duplicates": "on", "go": "next"})
    assert client.post(url("technique"), {"technique": "sft", "t-method": "lora"}).status_code == 302
    train, _ = split_rows(Draft.objects.get())
    assert len(train) == 24 and train == rows
    assert "duplicates dropped" in client.get(url("review")).content.decode()


def test_the_data_step_surveys_and_previews_its_file_once_not_on_every_render(wizard, monkeypatch):
    """The survey (every row read) and the preview (up to 2,000 rows through the chat template) are made
    once per file, mapping and model, and later renders of the step and of the dataset's page read what
    was kept; a new mapping is surveyed anew (issue 20)."""
    from apps.jobs import wizard as wizard_module
    from workers.training import data

    client, url, project = wizard
    surveys: list[str] = []
    previews: list[str] = []
    real_survey, real_preview = data.survey, wizard_module.preview

    def counted(calls: list[str], real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(str(args[0]))
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(data, "survey", counted(surveys, real_survey))
    monkeypatch.setattr(wizard_module, "preview", counted(previews, real_preview))
    _model(client, url)
    assert _upload(client, url, "rows.jsonl", _sft_rows(40), go="check").status_code == 302
    first = client.get(url("data")).content.decode()
    made = (len(surveys), len(previews))
    assert made[1] == 1, previews
    assert 'data-testid="preview"' in first and 'data-testid="histogram"' in first

    def shown(page: str) -> str:  # the page without its CSRF tokens, which change on every render
        return re.sub(r'(csrfmiddlewaretoken" value=|X-CSRFToken": )"[^"]+"', "", page)

    for _ in range(3):
        assert shown(client.get(url("data")).content.decode()) == shown(first)
    assert (len(surveys), len(previews)) == made, "a render read the file again"
    dataset = Dataset.objects.get(project=project)
    client.post(url("data"), {"dataset": f"dataset:{dataset.pk}", "eval_choice": "auto", "go": "check",
                              "format": "as-is", "map_messages": "messages"})  # fmt: skip
    client.get(url("data"))
    assert len(surveys) > made[0], "a new mapping is surveyed anew"
