from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workers.training import data, tiny
from workers.training.data import DataError, load, read_rows, validate


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("technique", "file"),
    [("sft", "reverse/sft.jsonl"), ("dpo", "reverse/dpo.jsonl"), ("rlvr", "reverse/rlvr.jsonl"),
     ("sft", "add/sft.jsonl"), ("rlvr", "add/rlvr.jsonl"), ("rlaif", "reverse/rlvr.jsonl")],
)  # fmt: skip
def test_every_demo_dataset_fits_its_technique(technique, file):
    check = validate(read_rows(tiny.DEMO / file), technique)
    assert check.ok and len(check.rows) == (4100 if file == "reverse/sft.jsonl" else 400)


def test_held_out_words_never_appear_in_training():
    train = {r["answer"] for r in tiny.read_jsonl(tiny.DEMO / "reverse" / "rlvr.jsonl")}
    train |= {r["messages"][-1]["content"] for r in tiny.read_jsonl(tiny.DEMO / "reverse" / "sft.jsonl")}
    held_out = {r["answer"] for r in tiny.read_jsonl(tiny.DEMO / "reverse" / "eval.jsonl")}
    assert len(held_out) == 50 and not train & held_out


def test_a_dpo_dataset_without_a_rejected_column_is_refused_with_the_columns_it_needs(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "c"}])
    with pytest.raises(
        DataError, match="needs the columns prompt/chosen/rejected; this one has chosen, prompt"
    ):
        load(path, "dpo")


def test_an_empty_dataset_is_refused(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DataError, match=re.escape("empty.jsonl is empty: it has no rows")):
        load(path, "sft")


def test_bad_rows_are_named_by_line_and_can_be_dropped(tmp_path):
    good = {"prompt": "add: 1 + 1", "completion": "2"}
    path = _jsonl(
        tmp_path / "d.jsonl",
        [good, {"prompt": "", "completion": "x"}, good, {"prompt": "q", "completion": {"a": 1}}],
    )
    check = validate(read_rows(path), "sft")
    assert check.errors == [(2, "“prompt” is empty"), (4, "“completion” is a JSON object, not text")]
    with pytest.raises(DataError, match=re.escape("2 bad rows in d.jsonl: line 2: “prompt” is empty;")):
        load(path, "sft")
    assert load(path, "sft", drop_bad=True) == [good, good]


def test_a_conversation_must_end_with_the_assistant(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    assert validate(read_rows(path), "sft").errors == [(1, "the last message must be the assistant's answer")]


def test_columns_with_other_names_are_mapped(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"question": "2+2?", "answer": "4"}])
    rows = load(path, "rlvr", column_map={"question": "prompt"})
    assert rows == [{"prompt": "2+2?", "answer": "4"}]


def test_invalid_json_names_its_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": \n')
    with pytest.raises(
        DataError,
        match=re.escape("1 bad line in d.jsonl: line 2 is not valid JSON: Expecting value at column 12."),
    ):
        read_rows(path)


def test_csv_and_parquet_are_read(tmp_path):
    (tmp_path / "d.csv").write_text("prompt,chosen,rejected\nhi,yes,no\n")
    assert load(tmp_path / "d.csv", "dpo") == [{"prompt": "hi", "chosen": "yes", "rejected": "no"}]
    pq.write_table(pa.table({"prompt": ["hi"], "answer": ["4"]}), tmp_path / "d.parquet")
    assert load(tmp_path / "d.parquet", "rlvr") == [{"prompt": "hi", "answer": "4"}]


def test_other_file_types_and_missing_files_are_named(tmp_path):
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(
        DataError, match=re.escape("Atelier reads .jsonl, .json, .csv, .tsv and .parquet files")
    ):
        read_rows(tmp_path / "d.txt")
    with pytest.raises(DataError, match="No dataset file at"):
        read_rows(tmp_path / "nope.jsonl")


def test_plain_text_rows_are_trained_as_chat_turns_where_the_model_has_a_chat_template(tiny_model):
    """What the Data step previews (the row through the chat template), the held-out scoring and the
    endpoint ask is what training sees: TRL trains plain-text rows without the template otherwise."""
    from transformers import AutoTokenizer

    rows: list[dict[str, Any]] = [{"prompt": "reverse: c a t", "completion": "t a c", "source": "mine"},
            {"prompt": "reverse: d o g", "chosen": "g o d", "rejected": "d o g"},
            {"messages": [{"role": "user", "content": "reverse: o x"}, {"role": "assistant", "content": "x o"}]},
            {"prompt": [{"role": "user", "content": "reverse: a b"}], "answer": "b a"}]  # fmt: skip
    chat = data.for_model(rows, AutoTokenizer.from_pretrained(tiny_model / "partial"))
    assert chat[0] == {"prompt": [{"role": "user", "content": "reverse: c a t"}],
                       "completion": [{"role": "assistant", "content": "t a c"}], "source": "mine"}  # fmt: skip
    assert chat[1]["rejected"] == [{"role": "assistant", "content": "d o g"}]
    assert chat[2:] == rows[2:]  # chat already, and a reference answer is not a turn

    class NoTemplate:
        chat_template = None

    assert data.for_model(rows, NoTemplate()) == rows


def test_the_arrow_survey_and_the_row_by_row_survey_agree(tmp_path, tiny_model):
    """A clean file of text columns is surveyed in Arrow batches (as fast as `datasets` loads it); any
    other file row by row. Both give the same answers: checks, duplicates (exact and near), answers,
    long rows, the rows also in an eval file, the sample shown."""
    from apps.datasets.services import model_reader
    from workers.training.formats import Mapping

    words = ["cat", "dog", "sun", "moon", "tree", "star", "fish", "bird", "lake", "rain", "snow", "wind"]
    rows = [
        {"prompt": f"reverse: {' '.join(w)}", "completion": " ".join(w[::-1]), "id": i}
        for i, w in enumerate(words)
    ]
    rows += [
        rows[0],
        {**rows[1], "prompt": "Reverse:  D O G!"},
        {"prompt": "long " * 2000, "completion": "x", "id": 99},
    ]
    rows += [{"prompt": f"q{i}", "completion": "yes", "id": 100 + i} for i in range(12)]
    path = _jsonl(tmp_path / "d.jsonl", rows)
    eval_path = _jsonl(tmp_path / "eval.jsonl", [{"prompt": "reverse: c a t", "answer": "t a c"}])
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    context, measure = model_reader(str(tiny_model / "partial"))
    for source in (path, tmp_path / "d.parquet"):
        keys = data.prompt_keys(eval_path, Mapping({}))
        fast, slow = (
            data.survey(source, context=context, measure=measure, exclude=keys, arrow=arrow)
            for arrow in (True, False)
        )
        assert (fast.engine, slow.engine) == ("arrow", "rows")
        assert fast.as_dict() == slow.as_dict() and fast.sample == slow.sample
        assert (fast.duplicates, fast.near_duplicates, fast.overlap, fast.long_count) == (1, 1, 2, 1)
        assert fast.top_answer == "yes" and fast.checks["sft"]["good"] == len(rows)


def test_a_saved_arrow_folder_is_read_and_a_hub_dataset_not_in_the_cache_is_said_as_a_models_would_be(
    tmp_path, monkeypatch
):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # offline, the normal case here

    rows = [
        {"prompt": "reverse: c a t", "completion": "t a c"},
        {"prompt": "reverse: d o g", "completion": "g o d"},
    ]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    assert load(tmp_path / "saved", "sft") == rows
    with pytest.raises(DataError, match="The dataset “nobody/no-such-data” is not on this machine"):
        data.survey("hf:nobody/no-such-data")  # a cached one: tests/datasets/test_hub.py
