"""A person brings the files other tools export, in Chromium: an Alpaca file (recognised and converted,
said so), a CSV whose two columns are mapped at once in the table (each choice checks the data again),
and a JSON lines file with broken lines (every one listed, the good rows kept, dropped through to the
review's plan); then the dataset's own page: its mapping, the rows browser's search, delete. Screenshots
go to test-artifacts/."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from apps.datasets.models import Dataset
from apps.projects.services import project_create
from tests.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _rows(n: int) -> list[dict[str, str]]:
    return [
        {"prompt": f"reverse: {' '.join(f'w{i:03d}')}", "completion": " ".join(reversed(f"w{i:03d}"))}
        for i in range(n)
    ]


def test_a_person_brings_three_kinds_of_file_and_maps_two_columns_at_once(
    page, alice, artifacts_dir, tiny_model, tmp_path
):
    project = project_create(user=alice, name="Files")
    login(page, "alice")
    page.goto(page.url.split("/projects")[0] + f"/projects/{project.pk}/customize/model/")
    page.get_by_label(re.compile("Atelier tiny \\(partly trained\\)")).check()
    page.get_by_role("button", name="Next: data").click()
    expect(page.get_by_test_id("step-data")).to_be_visible()

    # 1. Alpaca: recognised, said, previewed through the chat template
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text("".join(json.dumps({"instruction": "Reverse the letters.", "input": r["prompt"][9:],
                                          "output": r["completion"]}) + "\n" for r in _rows(30)))  # fmt: skip
    page.get_by_label("Upload JSONL, JSON, CSV, TSV or Parquet").set_input_files(alpaca)
    page.get_by_role("button", name="Check the data").click()
    expect(page.get_by_test_id("format-recognised")).to_contain_text(
        "Alpaca: instruction + input → prompt (user), output → completion (assistant)"
    )
    expect(page.get_by_test_id("fits-sft")).to_contain_text("yes")
    expect(page.get_by_test_id("preview").first).to_contain_text("Reverse the letters.\n\nw 0 0 0")
    page.screenshot(path=artifacts_dir / "data-1-alpaca.png", full_page=True)

    # 2. A CSV with its own column names: two columns mapped in the table, each choice checked at once
    csv = tmp_path / "ask-reply.csv"
    csv.write_text(
        "ask,reply\r\n" + "".join(f'"{r["prompt"]}, please",{r["completion"]}\r\n' for r in _rows(30))
    )
    page.get_by_label("Upload JSONL, JSON, CSV, TSV or Parquet").set_input_files(csv)
    page.get_by_role("button", name="Check the data").click()
    expect(page.get_by_test_id("data-report")).to_contain_text("ask-reply.csv")
    expect(page.get_by_test_id("fits-sft")).to_contain_text("no")
    page.get_by_test_id("map-prompt").select_option("ask")
    expect(page.get_by_test_id("map-prompt")).to_have_value("ask")  # the page came back with the choice
    page.get_by_test_id("map-completion").select_option("reply")
    expect(page.get_by_test_id("fits-sft")).to_contain_text("yes")
    expect(page.get_by_test_id("map-completion")).to_have_value("reply")
    page.screenshot(path=artifacts_dir / "data-2-mapped.png", full_page=True)
    mapped = Dataset.objects.get(name="ask-reply.csv")
    assert mapped.mapping == {"columns": {"prompt": "ask", "completion": "reply"}, "format": "auto"}

    # 3. Broken lines: every one listed, the good rows kept; dropped, they stay dropped to the review
    broken = tmp_path / "broken.jsonl"
    lines = [json.dumps(r) for r in _rows(30)]
    lines[4], lines[17] = '{"prompt": "cut off', '{"prompt": "x", "completion": null}'
    broken.write_text("\n".join(lines) + "\n")
    page.get_by_label("Upload JSONL, JSON, CSV, TSV or Parquet").set_input_files(broken)
    page.get_by_role("button", name="Check the data").click()
    expect(page.get_by_test_id("unreadable")).to_contain_text("Unterminated string starting at column 12")
    expect(page.get_by_test_id("fits-sft")).to_contain_text("with drops")
    page.get_by_label("Drop rows that do not fit (listed below)").check()
    page.screenshot(path=artifacts_dir / "data-3-broken.png", full_page=True)
    page.get_by_role("button", name="Next: technique").click()
    expect(page.get_by_test_id("step-technique")).to_be_visible()
    page.get_by_role("button", name="Next: review").click()
    expect(page.get_by_test_id("review-data")).to_contain_text("bad rows dropped")
    expect(page.get_by_test_id("review-hparams")).to_contain_text("26 training rows")  # 28 good, 2 held out
    expect(page.get_by_test_id("launch")).to_be_enabled()
    page.screenshot(path=artifacts_dir / "data-4-review.png", full_page=True)

    # The dataset's own page: its mapping, the rows browser, delete
    page.goto(page.url.split("/projects")[0] + f"/projects/{project.pk}/datasets/")
    page.get_by_role("link", name="ask-reply.csv").click()
    expect(page.get_by_test_id("dataset-name")).to_have_text("ask-reply.csv")
    expect(page.get_by_test_id("fits-sft")).to_contain_text("yes")
    expect(page.get_by_test_id("map-prompt")).to_have_value("ask")
    page.get_by_test_id("rows-search").fill("w 0 1 7")
    expect(page.get_by_test_id("dataset-row-line")).to_have_count(1)
    expect(page.get_by_test_id("rows")).to_contain_text("reverse: w 0 1 7, please")
    page.screenshot(path=artifacts_dir / "data-5-dataset-page.png", full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("dataset-delete").click()
    expect(page.get_by_test_id("datasets")).not_to_contain_text("ask-reply.csv")
    assert not mapped.file.exists()
