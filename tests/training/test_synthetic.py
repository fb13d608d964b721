"""Synthetic data in the training layer: parsing, validation, near-duplicates and topic trees checked
deterministically on teacher replies recorded from a real local teacher (the tiny model behind the
built-in engine, whose output is poor: tests/training/fixtures/synthetic_tiny_teacher.json), documents
and their limits, the spec's limits, and whole runs against a real local teacher process."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from workers.training.events import read_events
from workers.training.folder import JobFolder
from workers.training.spec import SpecError
from workers.training.synthetic import schema
from workers.training.synthetic.dedupe import NearDuplicates
from workers.training.synthetic.documents import DocumentError, chunk, load_documents, read_document
from workers.training.synthetic.pipeline import SynthSpec, degraded, synthesize, synthesize_and_report
from workers.training.synthetic.teacher import Teacher

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "synthetic_tiny_teacher.json").read_text())[
    "records"
]


def _spec(tmp_path: Path, **more: Any) -> dict[str, Any]:
    return {"technique": "sft", "description": "Reverse words.", "output_dir": str(tmp_path / "out"),
            "teacher": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}, "tracking": {"enabled": False}, **more}  # fmt: skip


# Parsing and validation, on recorded and on well-formed replies --------------------------------------------


@pytest.mark.parametrize(
    "record", [r for r in RECORDED if r["kind"] == "examples"], ids=lambda r: r["technique"]
)
def test_the_tiny_teachers_recorded_examples_are_dropped_as_not_json(record):
    good, reasons = schema.examples_in(record["reply"], record["technique"])
    assert good == [] and reasons == ["not JSON"]


@pytest.mark.parametrize(
    "record", [r for r in RECORDED if r["kind"] == "topics"], ids=lambda r: r["technique"]
)
def test_the_tiny_teachers_recorded_topic_trees_are_refused(record):
    with pytest.raises((schema.NotJson, ValueError)):
        schema.topics_in(record["reply"])


def test_well_formed_replies_in_any_usual_shape_give_the_techniques_fields():
    """Replies as a capable teacher writes them (a tiny model cannot): fenced, bare lists, one object."""
    fenced = 'Sure!\n```json\n{"examples": [{"prompt": "Can I return shoes?", "completion": "Yes, within 30 days."}]}\n```'
    assert schema.examples_in(fenced, "sft") == (
        [{"prompt": "Can I return shoes?", "completion": "Yes, within 30 days."}],
        [],
    )
    listed = '[{"prompt": "2+2?", "answer": "4", "extra": 1}, {"prompt": "3+3?"}]'
    assert schema.examples_in(listed, "rlvr") == ([{"prompt": "2+2?", "answer": "4"}], ["missing answer"])
    one = 'Here: {"prompt": "Hi", "chosen": "  "} and more'
    assert schema.examples_in(one, "dpo") == ([], ["empty or not text: chosen"])
    assert schema.examples_in('{"examples": ["just text"]}', "rlaif") == ([], ["not an object"])


def test_topic_trees_are_read_leniently_and_give_their_leaves():
    tree = schema.topics_in(
        '{"topics": [{"name": "Refunds", "subtopics": ["cards", "cash"]}, "Exchanges", {"x": 1}]}'
    )
    assert tree == [
        {"name": "Refunds", "subtopics": ["cards", "cash"]},
        {"name": "Exchanges", "subtopics": []},
    ]
    assert schema.leaves(tree) == ["Refunds / cards", "Refunds / cash", "Exchanges"]


def test_near_duplicates_are_caught_and_different_texts_are_kept():
    seen = NearDuplicates()
    assert not seen.seen_before("How do I return a pair of shoes that do not fit me well?")
    assert seen.seen_before("How do I return a pair of shoes that do not fit me well ?!")
    assert seen.seen_before("how do i return a pair of shoes that do not fit me well")
    assert not seen.seen_before("What is the refund policy for electronics bought online?")


def test_a_degraded_answer_is_a_worse_cut_of_the_chosen_one():
    import random

    chosen = "You can return the item within thirty days if you keep the receipt and the box."
    rejected = degraded(chosen, random.Random(0))
    assert rejected != chosen and chosen.startswith(rejected) and len(rejected) < len(chosen) / 2


# Documents and limits -------------------------------------------------------------------------------------


def test_documents_are_read_as_text_and_chunked(tmp_path):
    page = tmp_path / "faq.html"
    page.write_text(
        "<html><script>var x=1;</script><h1>Returns</h1><p>Within 30 days.</p><p>Keep the receipt.</p></html>"
    )
    text = read_document(page)
    assert "var x" not in text and "Returns" in text and "Keep the receipt." in text
    notes = tmp_path / "notes.md"
    notes.write_text("\n\n".join(f"Paragraph {i}. " + "word " * 50 for i in range(30)))
    chunks = load_documents([str(notes)], size=600)
    assert len(chunks) > 5 and all(len(c.text) <= 600 for c in chunks) and chunks[0].document == "notes.md"
    assert chunk("One. Two. " * 200, size=100)[0].endswith(".")


def test_bad_documents_are_refused_saying_why(tmp_path):
    big = tmp_path / "manual.pdf"
    with big.open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # a 50 MB PDF (sparse: no disk used)
    with pytest.raises(
        DocumentError, match=re.escape("manual.pdf is 50 MB; a document may be at most 20 MB")
    ):
        read_document(big)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n ")
    with pytest.raises(DocumentError, match=re.escape("empty.txt has no text")):
        read_document(empty)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(DocumentError, match=re.escape("broken.pdf")):
        read_document(broken)
    with pytest.raises(DocumentError, match=re.escape("reads .txt, .md, .pdf")):
        read_document(tmp_path / "slides.pptx")


@pytest.mark.parametrize(("rows", "message"), [(0, "at least 1 row"), (1_000_000, "At most 10,000 rows")])
def test_impossible_row_counts_are_refused(tmp_path, rows, message):
    with pytest.raises(SpecError, match=message):
        SynthSpec.from_dict(_spec(tmp_path, rows=rows))


# Whole runs ---------------------------------------------------------------------------------------------


def test_an_unreachable_teacher_fails_the_run_with_a_clear_message(tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps(_spec(tmp_path, rows=3)))
    assert synthesize_and_report(tmp_path / "spec.json") == 1
    failed = read_events(JobFolder(tmp_path / "out").events)[-1]
    assert (
        failed["event"] == "failed"
        and "The teacher at http://127.0.0.1:9/v1 cannot be reached" in failed["message"]
    )


def test_a_run_with_a_capable_teacher_writes_valid_distinct_rows_with_provenance(tmp_path, monkeypatch):
    """A capable teacher cannot run on this machine: its replies are scripted here (the parsing of real
    replies is tested above; the tiny model's real replies in the next test)."""
    replies = iter([
        '{"topics": [{"name": "Refunds", "subtopics": ["cards"]}, "Exchanges"]}',
        '{"examples": [{"prompt": "Can I get my money back on a card?", "chosen": "Yes: refunds go to the card you paid with within 5 days."},'
        ' {"prompt": "Can I get my money back on a card ?", "chosen": "Yes: refunds go to the card you paid with within 5 days."}]}',
        "no idea",
        '[{"prompt": "Can I swap a size?", "chosen": "Yes, bring it back with the receipt and pick another size."}]',
    ] + ['{"examples": []}'] * 20)  # fmt: skip
    monkeypatch.setattr(Teacher, "ask", lambda self, messages, **kw: next(replies))
    document = tmp_path / "policy.md"
    document.write_text("Refunds go to the original card within 5 days.\n\nExchanges need the receipt.")
    spec = SynthSpec.from_dict(
        _spec(tmp_path, technique="dpo", rows=3, documents=[str(document)], attempts=2, per_request=2)
    )
    from workers.training.events import EventWriter

    summary = synthesize(spec, EventWriter(JobFolder(tmp_path).events, to_stdout=False))
    rows = [json.loads(line) for line in JobFolder(tmp_path / "out").rows.read_text().splitlines()]
    assert summary["rows"] == len(rows) == 2
    assert summary["rejected"]["near-duplicate"] == 1 and summary["rejected"]["not JSON"] == 1
    from workers.training.data import validate

    assert validate(rows, "dpo").ok
    assert all(r["rejected"] != r["chosen"] and r["chosen"].startswith(r["rejected"]) for r in rows)
    origin = [json.loads(line) for line in JobFolder(tmp_path / "out").provenance.read_text().splitlines()]
    assert origin[0]["topic"] == "Refunds / cards" and origin[0]["chunk"]["document"] == "policy.md"
    # Topics take turns: the second request (Exchanges) got "no idea", the third went to Refunds again.
    assert origin[1]["topic"] == "Refunds / cards" and "degraded" in origin[0]["rejected_from"]
    assert json.loads(JobFolder(tmp_path / "out").topics.read_text())[1]["name"] == "Exchanges"


def test_a_run_against_the_real_tiny_teacher_completes_and_drops_what_it_cannot_use(
    tmp_path, tiny_model, mlflow_service
):
    """The real local teacher process: the built-in engine serving the tiny model, over HTTP."""
    from tests.conftest import LOGS, free_port, port_open
    from tests.harness import Service, mlflow_runs, python

    port = free_port()
    engine = Service("tiny-teacher", python("-m", "workers.serving", "engine", "--model", str(tiny_model / "partial"),
                                           "--port", str(port)), LOGS)  # fmt: skip
    try:
        # The port itself: the engine logs "listening" just before uvicorn binds it (refused once in CI).
        engine.wait_until(lambda: port_open(port), 90, "listening")
        spec = _spec(tmp_path, rows=4, attempts=2, per_request=2, max_tokens=48,
                     teacher={"base_url": f"http://127.0.0.1:{port}/v1", "model": "base"},
                     tracking={"uri": mlflow_service, "experiment": "synthetic-tests"})  # fmt: skip
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        assert synthesize_and_report(tmp_path / "spec.json") == 0
    finally:
        engine.stop()
    events = read_events(JobFolder(tmp_path / "out").events)
    finished = events[-1]
    assert finished["event"] == "finished", finished
    assert (
        finished["requests"] == 4
        and finished["dropped"] >= 4
        and finished["rejected"].get("not JSON", 0) >= 1
    )
    rows = [json.loads(line) for line in JobFolder(tmp_path / "out").rows.read_text().splitlines()]
    if rows:  # whatever passed is valid for the technique
        from workers.training.data import validate

        assert validate(rows, "sft").ok
    assert any(e["event"] == "warning" and "usable rows" in e["message"] for e in events)
    run = next(
        r
        for r in mlflow_runs(mlflow_service, "synthetic-tests")
        if r["info"]["run_id"] == finished["mlflow"]["run_id"]
    )
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert metrics["requests"] == 4 and metrics["dropped"] == finished["dropped"]


def test_dpo_rejected_answers_can_come_from_a_weaker_local_model(tmp_path, monkeypatch, tiny_model):
    """The teacher is scripted (a capable one cannot run here); the weaker model is the real tiny base."""
    real_ask = Teacher.ask
    chosen = '{"examples": [{"prompt": "reverse: c a t", "chosen": "t a c"}, {"prompt": "reverse: d o g", "chosen": "g o d"}]}'

    def ask(self: Teacher, messages: Any, **kw: Any) -> str:
        return real_ask(self, messages, max_tokens=8) if self.local else chosen

    monkeypatch.setattr(Teacher, "ask", ask)
    spec = SynthSpec.from_dict(_spec(tmp_path, technique="dpo", rows=2, topics=[{"name": "Words", "subtopics": []}],
                                     weak={"local": str(tiny_model / "base")}))  # fmt: skip
    from workers.training.events import EventWriter

    summary = synthesize(spec, EventWriter(JobFolder(tmp_path).events, to_stdout=False))
    rows = [json.loads(line) for line in JobFolder(tmp_path / "out").rows.read_text().splitlines()]
    origin = [json.loads(line) for line in JobFolder(tmp_path / "out").provenance.read_text().splitlines()]
    assert summary["rows"] == len(rows) == 2 and all(r["rejected"] != r["chosen"] for r in rows)
    assert all(o["rejected_from"].startswith("local model") for o in origin)
