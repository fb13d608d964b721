"""The generation run: documents in chunks, a topic tree (proposed by the teacher, or the one a person
edited), then examples per topic grounded in a chunk, asked for as JSON in the technique's fields,
checked, retried, near-duplicates dropped, DPO's rejected answers from a weaker source. Every row keeps
its provenance; every dropped output is counted by reason; the run is logged to MLflow as its own run.

    python -m workers.training synthesize SPEC.json

Writes OUTPUT/topics.json, OUTPUT/rows.jsonl (the dataset), OUTPUT/provenance.jsonl (one line per row:
topic, document chunk, teacher, the request) and OUTPUT/summary.json, with events on the way.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workers.training.events import EventWriter
from workers.training.folder import JobFolder
from workers.training.spec import SpecError, read_spec
from workers.training.synthetic import schema
from workers.training.synthetic.dedupe import NearDuplicates
from workers.training.synthetic.documents import Chunk, load_documents
from workers.training.synthetic.teacher import Teacher
from workers.training.techniques import REGISTRY

MAX_ROWS = 10_000
MAX_SEEDS = 20
FORMAT_HINTS = schema.HINTS  # each technique declares its own (techniques.base.Synthetic)


@dataclass
class SynthSpec:
    technique: str
    description: str
    teacher: dict[str, Any]
    output_dir: str = ""  # the job's folder; empty in a spec that is only checked
    rows: int = 50
    seeds: list[dict[str, Any]] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    topics: list[dict[str, Any]] | None = None  # a tree a person edited; None: the teacher proposes one
    stage: str = "all"  # "topics": only propose the tree; "all": the tree (unless given) and the rows
    weak: dict[str, Any] | None = None  # DPO's weaker source of rejected answers; None: degraded answers
    per_request: int = 4
    attempts: int = 3  # requests per wanted batch before the run stops trying
    temperature: float = 0.8
    max_tokens: int = 512
    max_topics: int = 8
    seed: int = 0
    tracking: dict[str, Any] = field(default_factory=dict)
    job_id: str = ""  # the Atelier job that runs it, if any

    @property
    def output(self) -> Path:
        return Path(self.output_dir)

    @property
    def folder(self) -> JobFolder:
        return JobFolder(self.output)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthSpec:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise SpecError(f"Unknown fields in the generation spec: {', '.join(sorted(unknown))}.")
        for required in ("technique", "description", "teacher"):
            if not data.get(required):
                raise SpecError(f"The generation spec needs “{required}”.")
        spec = cls(**data)
        if spec.technique not in REGISTRY:
            raise SpecError(f"Unknown technique “{spec.technique}”: choose one of {', '.join(REGISTRY)}.")
        if not isinstance(spec.rows, int) or spec.rows < 1:
            raise SpecError("Ask for at least 1 row.")
        if spec.rows > MAX_ROWS:
            raise SpecError(
                f"At most {MAX_ROWS:,} rows per generation (asked for {spec.rows:,}): ask for fewer, or run several."
            )
        if len(spec.seeds) > MAX_SEEDS:
            raise SpecError(f"At most {MAX_SEEDS} seed examples; they go into every request to the teacher.")
        if spec.stage not in ("topics", "all"):
            raise SpecError("stage is “topics” or “all”.")
        return spec

    @classmethod
    def load(cls, path: Path) -> SynthSpec:
        return cls.from_dict(read_spec(path))


# What the teacher is asked -----------------------------------------------------------------------------


def _seeds_text(spec: SynthSpec) -> str:
    fields = schema.FIELDS[spec.technique]
    shown = [{k: v for k, v in s.items() if k in fields} for s in spec.seeds]
    return "\n".join(json.dumps(s, ensure_ascii=False) for s in shown if s)


def topic_request(spec: SynthSpec, chunks: list[Chunk]) -> list[dict[str, str]]:
    docs = "".join(f"\n- {c.document}: {c.text[:300]}" for c in chunks[:6])
    user = (
        f"Task: {spec.description}\n"
        + (f"Examples of the data wanted:\n{_seeds_text(spec)}\n" if spec.seeds else "")
        + (f"Source documents (beginnings):{docs}\n" if chunks else "")
        + f"\nPropose up to {spec.max_topics} topics that together cover this task, each with up to 4 subtopics. "
        'Answer with JSON only: {"topics": [{"name": "...", "subtopics": ["...", "..."]}]}'
    )
    return [
        {
            "role": "system",
            "content": "You plan training data for a language model. You answer with JSON only.",
        },
        {"role": "user", "content": user},
    ]


def example_request(spec: SynthSpec, topic: str, chunk: Chunk | None, count: int) -> list[dict[str, str]]:
    grounding = (
        f'\nBase the examples on this passage from {chunk.document}:\n"""\n{chunk.text}\n"""\n'
        if chunk
        else ""
    )
    user = (
        f"Task: {spec.description}\nTopic: {topic}\n{grounding}"
        + (f"\nExamples of the format and style wanted:\n{_seeds_text(spec)}\n" if spec.seeds else "")
        + f"\nWrite {count} new, varied examples for this topic. Answer with JSON only: "
        f'{{"examples": [{FORMAT_HINTS[spec.technique]}, ...]}}'
    )
    return [
        {
            "role": "system",
            "content": "You write training data for a language model. You answer with JSON only.",
        },
        {"role": "user", "content": user},
    ]


def degraded(answer: str, rng: random.Random) -> str:
    """A deliberately worse answer for DPO's `rejected`: its first third, cut mid-way."""
    words = answer.split()
    keep = max(1, len(words) // 3)
    return " ".join(words[:keep]) if len(words) > 1 else answer[: max(1, len(answer) // 2)]


# The run ------------------------------------------------------------------------------------------------


def propose_topics(
    spec: SynthSpec, teacher: Teacher, chunks: list[Chunk], counts: Counter
) -> list[dict[str, Any]]:
    """The teacher's topic tree; after `attempts` unusable answers, one topic per document (or the task
    itself), and the reason is counted."""
    for _ in range(spec.attempts):
        reply = teacher.ask(
            topic_request(spec, chunks), temperature=spec.temperature, max_tokens=spec.max_tokens
        )
        try:
            return schema.topics_in(reply)[: spec.max_topics]
        except (schema.NotJson, ValueError) as exc:
            counts[f"topic tree: {exc}"] += 1
    documents = list(dict.fromkeys(c.document for c in chunks))
    return [{"name": d, "subtopics": []} for d in documents[: spec.max_topics]] or [
        {"name": spec.description[:120], "subtopics": []}
    ]


def synthesize(spec: SynthSpec, events: EventWriter) -> dict[str, Any]:
    began = time.time()
    rng = random.Random(spec.seed)
    chunks = load_documents(spec.documents)
    teacher = Teacher.from_spec(spec.teacher)
    weak = Teacher.from_spec(spec.weak) if spec.weak else None
    events.emit(
        "started", technique=spec.technique, rows=spec.rows, teacher=teacher.label, chunks=len(chunks)
    )
    counts: Counter[str] = Counter()
    tree = spec.topics or propose_topics(spec, teacher, chunks, counts)
    spec.output.mkdir(parents=True, exist_ok=True)
    spec.folder.topics.write_text(json.dumps(tree, indent=2, ensure_ascii=False))
    topics = schema.leaves(tree)
    events.emit("topics", topics=tree, leaves=len(topics))
    if spec.stage == "topics":
        summary: dict[str, Any] = {
            "stage": "topics",
            "topics": tree,
            "rejected": dict(counts),
            "teacher": teacher.label,
        }
        spec.folder.summary.write_text(json.dumps(summary, indent=2))
        events.emit("finished", **summary)
        return summary

    seen = NearDuplicates()
    rows: list[dict[str, Any]] = []
    provenance: list[dict[str, Any]] = []
    requests = 0
    budget = math.ceil(spec.rows / spec.per_request) * spec.attempts
    while len(rows) < spec.rows and requests < budget:
        if spec.folder.cancel.exists():
            events.warning("Stopped on request; the rows so far are kept.")
            break
        topic = topics[requests % len(topics)]
        source = chunks[requests % len(chunks)] if chunks else None
        messages = example_request(spec, topic, source, min(spec.per_request, spec.rows - len(rows)))
        reply = teacher.ask(messages, temperature=spec.temperature, max_tokens=spec.max_tokens)
        requests += 1
        good, reasons = schema.examples_in(reply, spec.technique)
        counts.update(reasons)
        for example in good:
            if len(rows) >= spec.rows:
                break
            if seen.seen_before(" ".join(example.values())):
                counts["near-duplicate"] += 1
                continue
            # The technique's rows from the example: DPO adds a worse answer as `rejected`, KTO makes
            # a thumbs-up row and a thumbs-down one (techniques.base.Synthetic).
            shape = REGISTRY[spec.technique].synthetic
            worse = origin = None
            if shape.needs_worse:
                best = example[shape.fields[-1]]
                if weak is not None:
                    worse = weak.ask([{"role": "user", "content": example["prompt"]}], temperature=0.7,
                                     max_tokens=spec.max_tokens).strip()  # fmt: skip
                    origin = weak.label
                else:
                    worse, origin = degraded(best, rng), "degraded (first third of the chosen answer)"
                if not worse or worse == best:
                    counts["rejected answer equals the chosen one"] += 1
                    continue
            made = shape.make_rows(example, worse)[: spec.rows - len(rows)]
            rows += made
            provenance += [{
                "topic": topic, "teacher": teacher.label, "request": messages[-1]["content"],
                "chunk": asdict(source) if source else None, **({"rejected_from": origin} if origin else {}),
            } for _ in made]  # fmt: skip
        events.emit(
            "step", step=len(rows), max_steps=spec.rows, requests=requests, rejected=sum(counts.values())
        )

    if len(rows) < spec.rows and requests >= budget:
        common = ", ".join(f"{reason} ({n})" for reason, n in counts.most_common(3)) or "none usable"
        events.warning(
            f"The teacher gave {len(rows)} usable rows of {spec.rows} asked for in {requests} requests; "
            f"most dropped outputs were: {common}."
        )
    spec.folder.rows.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    spec.folder.provenance.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in provenance))
    summary = {
        "stage": "all", "technique": spec.technique, "asked": spec.rows, "rows": len(rows), "requests": requests,
        "rejected": dict(counts), "dropped": sum(counts.values()), "teacher": teacher.label, "topics": tree,
        "seconds": round(time.time() - began, 1),
    }  # fmt: skip
    spec.folder.summary.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    run_id = _track(spec, summary, events)
    summary["mlflow"] = {"run_id": run_id} if run_id else None
    metrics = {k: summary[k] for k in ("rows", "asked", "requests", "dropped")}
    events.emit("finished", **summary, metrics=metrics, artifacts={"dataset": str(spec.folder.rows)})
    return summary


def _track(spec: SynthSpec, summary: dict[str, Any], events: EventWriter) -> str | None:
    """The generation as its own MLflow run: the spec as params, counts as metrics, the files as artifacts."""
    if not spec.tracking.get("enabled", True):
        return None
    from workers.training import tracking

    tracker, problem = tracking.start(
        tracking_uri=spec.tracking.get("tracking_uri") or spec.tracking.get("uri"), experiment=spec.tracking.get("experiment") or "synthetic-data",
        run_name=spec.tracking.get("run_name") or f"synthetic {spec.technique}", output=spec.output,
        params={k: v for k, v in asdict(spec).items() if k not in ("tracking", "topics")},
    )  # fmt: skip
    if tracker is None:
        events.warning(problem or "MLflow could not be reached.")
        return None
    metrics = {"rows": summary["rows"], "requests": summary["requests"], "dropped": summary["dropped"]}
    metrics |= {f"dropped.{reason.replace(':', '')[:200]}": n for reason, n in summary["rejected"].items()}
    folder = spec.folder.mlflow
    folder.mkdir(exist_ok=True)
    for kept in (spec.folder.topics, spec.folder.summary, spec.folder.provenance):
        if kept.exists():
            (folder / kept.name).write_text(kept.read_text())
    return str(tracker.finish(artifact=folder, kind="synthesis", register_as=None, metrics=metrics)["run_id"])


def synthesize_and_report(spec_path: Path) -> int:
    """The CLI's `synthesize`; an unusable teacher or document ends it with a `failed` event that says why."""
    from workers.training.train import report_events

    return report_events(spec_path, SynthSpec.load, synthesize)
