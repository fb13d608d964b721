"""The files people bring, generated here (none is shipped): each common format, each encoding and line
ending, broken lines, wrong types, missing and extra columns, huge rows, empty files, files over the cap,
archives renamed .jsonl. Each goes through the Data step's own service (dataset_upload, then the survey
with the model, as the wizard runs them) and gets the right conversion, or a message that names what is
wrong (and its line); a file with bad lines keeps its good rows."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.datasets import services as dataset_services

pytestmark = pytest.mark.django_db


def jsonl(*rows: Any) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def parquet(columns: dict[str, list[Any]]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()


def zipped(name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(name, content)
    return out.getvalue()


def chat(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in turns]


PC = {"prompt": "reverse: c a t", "completion": "t a c"}
HH = {
    "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.",
    "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 5.",
}
SHARE = {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "hi"},
                           {"from": "gpt", "value": "hello"}]}  # fmt: skip


@dataclass
class Case:
    name: str
    content: bytes
    refused: str = ""  # the message, when the file cannot be used at all
    format: str = "standard"
    fits: tuple[str, ...] = ()  # techniques it fits without drops
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # the first lines that cannot be read
    unreadable_count: int | None = None
    errors: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # technique: first bad rows
    notice: str = ""
    first: dict[str, Any] | None = None  # the first row as the techniques read it
    preview: str = ""  # why there is no preview, where the model's template cannot render the rows
    survey: dict[str, Any] = field(default_factory=dict)  # other survey fields


# fmt: off
CASES = [
    # The formats people export, each recognised and converted
    Case("alpaca.jsonl", jsonl({"instruction": "Reverse the letters", "input": "c a t", "output": "t a c"},
                               {"instruction": "Say hi", "input": "", "output": "hi"}),
         format="alpaca", fits=("sft", "rlvr", "rlaif"),
         first={"prompt": "Reverse the letters\n\nc a t", "completion": "t a c"}),
    Case("alpaca-no-input.json", json.dumps([{"instruction": "Say hi", "output": "hi"}]).encode(),
         format="alpaca", fits=("sft", "rlvr", "rlaif"), first={"prompt": "Say hi", "completion": "hi"}),
    Case("sharegpt.jsonl", jsonl(SHARE, SHARE), format="sharegpt", fits=("sft",),
         first={"messages": chat(("system", "Be brief."), ("user", "hi"), ("assistant", "hello"))}),
    Case("sharegpt-robot.jsonl", jsonl(SHARE, {"conversations": [{"from": "robot", "value": "x"}]}),
         format="sharegpt", unreadable=[(2, "turn 1 of “conversations” is from 'robot'; expected one of human, gpt, system")]),
    Case("openai-tools.jsonl", jsonl({"messages": [
        {"role": "system", "content": "Use tools."}, {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function",
                                                                "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "1"}, {"role": "assistant", "content": "Sunny."}]}),
         fits=("sft",), preview="the model's chat template cannot render these rows"),
    Case("trl-standard.jsonl", jsonl(PC, PC), fits=("sft", "rlvr", "rlaif"), first=PC),
    Case("trl-conversational.jsonl", jsonl({"prompt": chat(("user", "hi")), "completion": chat(("assistant", "hello"))}),
         fits=("sft", "rlvr", "rlaif")),
    Case("trl-preference.jsonl", jsonl({"prompt": "2+2?", "chosen": "4", "rejected": "5"}), fits=("dpo", "rlvr", "rlaif")),
    Case("trl-preference-chat.jsonl", jsonl({"prompt": chat(("user", "2+2?")), "chosen": chat(("assistant", "4")),
                                             "rejected": chat(("assistant", "5"))}), fits=("dpo", "rlvr", "rlaif")),
    Case("hh-rlhf.jsonl", jsonl(HH), format="implicit-preference", fits=("dpo", "rlvr", "rlaif"),
         first={"prompt": "\n\nHuman: What is 2+2?\n\nAssistant:", "chosen": "It is 4.", "rejected": "5."}),
    Case("implicit-chat.jsonl", jsonl({"chosen": chat(("user", "2+2?"), ("assistant", "4")),
                                       "rejected": chat(("user", "2+2?"), ("assistant", "5"))}),
         format="implicit-preference", fits=("dpo", "rlvr", "rlaif"),
         first={"chosen": chat(("assistant", "4")), "rejected": chat(("assistant", "5")), "prompt": chat(("user", "2+2?"))}),
    Case("question-answer.csv", b"question,answer\nWhat is 2+2?,4\nWhat is 3+3?,6\n", format="question-answer",
         fits=("sft", "rlvr", "rlaif"), first={"prompt": "What is 2+2?", "completion": "4", "answer": "4"}),
    Case("input-output.jsonl", jsonl({"input": "c a t", "output": "t a c"}), format="input-output",
         fits=("sft", "rlvr", "rlaif"), first={"prompt": "c a t", "completion": "t a c"}),
    Case("dolly.jsonl", jsonl({"instruction": "Summarise", "context": "A long text.", "response": "Short.",
                               "category": "summarization"}), format="dolly", fits=("sft", "rlvr", "rlaif"),
         first={"category": "summarization", "prompt": "Summarise\n\nA long text.", "completion": "Short."}),
    Case("kto.jsonl", jsonl({**PC, "label": True}, {**PC, "label": "no"}, {**PC, "label": "👍"}),
         fits=("sft", "rlvr", "rlaif", "kto")),
    # Encodings, BOMs, line endings, delimiters
    Case("excel.csv", codecs.BOM_UTF8 + b'prompt,completion\r\n"hello, there",hi\r\n"a ""quoted"" word",b\r\n',
         fits=("sft", "rlvr", "rlaif"), first={"prompt": "hello, there", "completion": "hi"}),
    Case("excel-semicolons.csv", b"prompt;completion\r\nhello;hi\r\n", fits=("sft", "rlvr", "rlaif"),
         first={"prompt": "hello", "completion": "hi"}),
    Case("tabs.tsv", b"prompt\tcompletion\nhello, there\thi\n", fits=("sft", "rlvr", "rlaif"),
         first={"prompt": "hello, there", "completion": "hi"}),
    Case("unicode-text.csv", "prompt,completion\nGrüße,schön\n".encode("utf-16"), fits=("sft", "rlvr", "rlaif"),
         notice="UTF-16", first={"prompt": "Grüße", "completion": "schön"}),
    Case("windows-1252.csv", ("prompt,completion\n" + "café crème,très bien\nà la mode,déjà\n" * 3).encode("cp1252"),
         fits=("sft", "rlvr", "rlaif"), notice="is not UTF-8: it reads as cp1252",
         first={"prompt": "café crème", "completion": "très bien"}),
    Case("bom.jsonl", codecs.BOM_UTF8 + jsonl(PC), fits=("sft", "rlvr", "rlaif"), first=PC),
    Case("crlf.jsonl", jsonl(PC).replace(b"\n", b"\r\n") * 2, fits=("sft", "rlvr", "rlaif")),
    # Broken lines: every one listed, the good rows kept, messages whole
    Case("one-broken-line.jsonl", jsonl(PC) + b'{"prompt": "unterminated\n' + jsonl(PC),
         unreadable=[(2, "is not valid JSON: Unterminated string starting at column 12")],
         survey={"rows": 2}),
    Case("many-broken-lines.jsonl", jsonl(PC) + b"{oops}\n" * 150, unreadable_count=150,
         unreadable=[(n, "is not valid JSON: Expecting property name enclosed in double quotes at column 2")
                     for n in range(2, 102)]),
    Case("a-list-line.jsonl", jsonl(PC, [1, 2], "text"), unreadable=[
        (2, "is a list, not a JSON object with columns"), (3, "is a string, not a JSON object with columns")]),
    # UTF-8 in its first 64 KB (what the encoding is recognised by), a Latin-1 line after them
    Case("not-utf8-line.jsonl", jsonl(*[PC] * 1500) + '{"prompt": "caf\xe9", "completion": "x"}\n'.encode("latin-1"),
         unreadable=[(1501, "is not UTF-8 text (byte 0xe9 at column 16)")]),
    Case("pretty-array.json", json.dumps([PC, {"prompt": "x", "completion": "y"}], indent=2).encode(),
         fits=("sft", "rlvr", "rlaif"), survey={"rows": 2}),
    Case("broken-array.json", b'[{"prompt": "a", "completion": "b"},\n {"prompt": oops}]',
         unreadable=[(2, "is not valid JSON: Expecting value at column 13; the items after it cannot be read")]),
    Case("ragged.csv", b"prompt,completion\nhello,hi\nhello, there,hi\n",
         unreadable=[(3, "has 3 fields; the header has 2 (a value holding a “,” must be in double quotes)")]),
    # Wrong types, empty cells, missing and extra columns
    Case("nulls.jsonl", jsonl(PC, {"prompt": "x", "completion": None}, {"prompt": None, "completion": "y"}),
         errors={"sft": [(2, "“completion” is empty (null)"), (3, "“prompt” is empty (null)")]}),
    Case("nan.parquet", parquet({"prompt": ["a", "b"], "completion": [1.5, float("nan")]}),
         errors={"sft": [(2, "“completion” is empty (null)")]}, fits=("rlvr", "rlaif"),
         notice="1 row has numbers in text columns; they are read as text."),
    Case("int-answers.parquet", parquet({"prompt": ["1+1", "2+2"], "answer": [2, 4]}), fits=("rlvr", "rlaif")),
    Case("int-completions.parquet", parquet({"prompt": ["1+1", "2+2"], "completion": [2, 4]}),
         fits=("sft", "rlvr", "rlaif"), notice="2 rows have numbers in text columns; they are read as text.",
         first={"prompt": "1+1", "completion": "2"}),
    Case("object-cell.jsonl", jsonl(PC, {"prompt": "a", "completion": {"text": "b"}}), fits=("rlvr", "rlaif"),
         errors={"sft": [(2, "“completion” is a JSON object, not text")]}),
    Case("only-text.jsonl", jsonl({"text": "just some text"}), format="as-is", survey={"rows": 1},
         errors={"sft": []}),
    Case("extra-columns.jsonl", jsonl({**PC, "source": "web", "id": 7}), fits=("sft", "rlvr", "rlaif"),
         first={**PC, "source": "web", "id": 7}),
    Case("unfinished-chat.jsonl", jsonl({"messages": chat(("user", "hi"))}),
         errors={"sft": [(1, "the last message must be the assistant's answer")]}),
    Case("bad-role.jsonl", jsonl({"messages": [{"role": "bot", "content": "x"}]}),
         errors={"sft": [(1, "“messages” has a message whose role is 'bot', not one of system, user, assistant, tool")]}),
    Case("sharegpt-as-messages.jsonl", jsonl({"messages": SHARE["conversations"]}),
         errors={"sft": [(1, "“messages” holds ShareGPT turns ({from, value}): choose the ShareGPT format")]}),
    Case("duplicates.jsonl", jsonl(PC, PC, {"prompt": "Reverse: C A T!", "completion": "t a c"}),
         fits=("sft", "rlvr", "rlaif"), survey={"duplicates": 1, "near_duplicates": 1}),
    Case("dominant.jsonl", jsonl(*({"prompt": f"q{i}", "completion": "I don't know."} for i in range(12))),
         fits=("sft", "rlvr", "rlaif"), survey={"top_answer": "I don't know.", "top_share": 1.0}),
    Case("huge-row.jsonl", jsonl(PC, {"prompt": "word " * 40_000, "completion": "x"}), fits=("sft", "rlvr", "rlaif"),
         survey={"long_count": 1}),
    # Files that cannot be used at all: a clear message, nothing kept
    Case("empty.jsonl", b"", refused="empty.jsonl is empty."),
    Case("blank.jsonl", b"\n \n\n", refused="blank.jsonl is empty: it has no rows."),
    Case("zipped.jsonl", zipped("rows.jsonl", jsonl(PC)), refused="zipped.jsonl is a zip archive"),
    Case("workbook.csv", zipped("[Content_Types].xml", b"<x/>"), refused="workbook.csv is a zip archive (an Excel workbook is one)"),
    Case("gzipped.jsonl", gzip.compress(jsonl(PC)), refused="gzipped.jsonl is gzip-compressed"),
    Case("document.csv", b"%PDF-1.7\n...", refused="document.csv is a PDF document"),
    Case("binary.jsonl", bytes(range(256)) * 4, refused="binary.jsonl is not a text file"),
    Case("notes.txt", b"hello", refused="notes.txt: Atelier reads .jsonl, .json, .csv, .tsv and .parquet files."),
    Case("all-broken.jsonl", b"{oops}\n[1]\n", refused="No line of all-broken.jsonl could be read as a row: 2 bad lines"),
    Case("fake.parquet", jsonl(PC), refused="fake.parquet is not a Parquet file"),
    Case("over-the-cap.jsonl", jsonl(*[PC] * 6000), refused="over-the-cap.jsonl is 305 KB; the limit is 293 KB."),
]
# fmt: on


def test_the_corpus_has_at_least_40_files():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_file_is_converted_or_refused_with_a_message_naming_what_is_wrong(
    case, alice, alice_project, settings, tmp_path, tiny_model
):
    settings.DATA_DIR = tmp_path
    settings.DATASET_MAX_BYTES = 300_000
    upload = SimpleUploadedFile(case.name, case.content)
    if case.refused:
        with pytest.raises(ValidationError) as caught:
            dataset_services.dataset_upload(project=alice_project, user=alice, upload=upload)
        assert case.refused in " ".join(caught.value.messages)
        assert not any(p.is_file() for p in (tmp_path / "projects").rglob("*")), "a refused file is not kept"
        return
    dataset = dataset_services.dataset_upload(project=alice_project, user=alice, upload=upload)
    found = dataset_services.survey(dataset.file, dataset.mapping, model=str(tiny_model / "partial"))
    report = found.as_dict()
    assert found.format == case.format
    assert [t for t, c in found.checks.items() if c["ok"]] == list(case.fits)
    assert found.unreadable == case.unreadable
    if case.unreadable_count is not None:
        assert found.unreadable_count == case.unreadable_count
    for technique, errors in case.errors.items():
        assert found.checks[technique]["errors"] == errors, found.checks[technique]
    notices = " ".join([dataset.survey.get("converted", ""), *report["notices"]])
    assert case.notice in notices if case.notice else not notices.strip()
    if case.first is not None:
        assert found.sample[0] == case.first
    for key, value in case.survey.items():
        assert report[key] == value, key
    from apps.jobs.wizard import preview

    shown = preview(str(tiny_model / "partial"), found.sample)
    if case.preview:
        assert case.preview in shown["preview_error"]
    elif (
        found.sample
    ):  # the good rows are kept: the Data step's preview renders them through the chat template
        assert shown["preview"] and "None" not in shown["preview"][0] and "nan" not in shown["preview"][0]
