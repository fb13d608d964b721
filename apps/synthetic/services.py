"""Writes for synthetic data: starting a generation (topics first), generating from the edited tree,
importing the rows a run wrote, curating them, and saving the accepted ones as a dataset."""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from apps.datasets import services as dataset_services
from apps.datasets.models import Dataset
from apps.jobs.models import Job, Kind, Status
from apps.jobs.services import job_create
from apps.projects.models import Project
from apps.projects.services import membership_require_editor
from apps.synthetic.models import GeneratedRow, Verdict
from workers.training import keys
from workers.training.synthetic import schema
from workers.training.synthetic.documents import MAX_DOCUMENT_BYTES, SUFFIXES, DocumentError, read_document

log = logging.getLogger("atelier.synthetic")
# A key made for one run when the teacher is one of the project's endpoints, or the teacher's secret.
TEACHER_KEY_ENV = keys.TEACHER_KEY_ENV


def _require_editor(*, project: Project, actor: User) -> None:
    membership_require_editor(
        project=project, actor=actor, message="Viewers can look but not generate or curate data."
    )


def documents_save(*, project: Project, files: list[UploadedFile]) -> list[str]:
    """Store uploaded documents (streamed, with the size cap) and check each has text; their paths.
    Nothing is kept when one of them cannot be used."""
    folder = Path(settings.DATA_DIR) / "projects" / str(project.pk) / "documents" / uuid.uuid4().hex
    paths: list[str] = []
    try:
        for upload in files:
            name = Path(upload.name or "document").name
            if Path(name).suffix.lower() not in SUFFIXES:
                raise ValidationError(f"{name}: documents can be {', '.join(SUFFIXES)}.")
            if (upload.size or 0) > MAX_DOCUMENT_BYTES:
                raise ValidationError(
                    f"{name} is {(upload.size or 0) / 1024**2:.0f} MB; a document may be at most "
                    f"{MAX_DOCUMENT_BYTES // 1024**2} MB. Split it, or upload the parts that matter."
                )
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / name
            dataset_services.upload_to_disk(
                upload, target, cap=MAX_DOCUMENT_BYTES,
                over=f"{name} is over the limit of {MAX_DOCUMENT_BYTES // 1024**2} MB.",
            )  # fmt: skip
            try:
                read_document(target)
            except DocumentError as exc:
                raise ValidationError(str(exc)) from exc
            paths.append(str(target))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return paths


def seeds_parse(text: str, technique: str) -> list[dict[str, Any]]:
    """Seed examples typed one JSON object a line, in the technique's fields."""
    seeds = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"Seed line {number} is not valid JSON: {exc.msg}.") from exc
        good, reasons = schema.examples_in(json.dumps(row), technique)
        if not good:
            fields = ", ".join(schema.FIELDS[technique])
            raise ValidationError(
                f"Seed line {number}: {reasons[0]} (a {technique.upper()} seed has {fields})."
            )
        seeds.append(good[0])
    return seeds


def seeds_from_dataset(dataset: Dataset, technique: str, count: int = 5) -> list[dict[str, Any]]:
    """The first rows of a dataset as seeds, in the technique's fields where the rows have them."""
    from workers.training.techniques import REGISTRY

    seeds = []
    for row in dataset_services.read(Path(dataset.path), mapping=dataset.mapping):
        held = REGISTRY[technique].heldout(row) or {}  # a row's prompt and its good answer
        prompt = held.get("prompt")
        text = prompt[-1]["content"] if isinstance(prompt, list) and prompt else prompt
        candidate = {"prompt": text, "completion": held.get("answer"), "chosen": held.get("answer"),
                     "answer": held.get("answer")}  # fmt: skip
        good, _ = schema.examples_in(json.dumps(candidate), technique)
        seeds += good
        if len(seeds) >= count:
            break
    if not seeds:
        raise ValidationError(f"{dataset.name} has no rows that fit a {technique.upper()} seed.")
    return seeds


def generation_start(
    *,
    project: Project,
    user: User,
    technique: str,
    description: str,
    rows: int,
    teacher: dict[str, Any],
    seeds: list[dict[str, Any]] | None = None,
    documents: list[str] | None = None,
    weak: dict[str, Any] | None = None,
    label: str = "",
) -> Job:
    """The first job of a generation: the teacher proposes a topic tree for a person to edit."""
    from workers.training.spec import SpecError, new_synthesis_spec

    _require_editor(project=project, actor=user)
    try:
        spec = new_synthesis_spec(technique=technique, description=description, rows=rows, teacher=teacher,
                                  seeds=seeds, documents=documents, weak=weak, stage="topics")  # fmt: skip
    except SpecError as exc:
        raise ValidationError(str(exc)) from exc
    return job_create(
        project=project, user=user, name=f"Generate {technique.upper()} data: {description.strip()[:60]}",
        spec=spec, kind=Kind.SYNTHESIS, auto_evaluate=False,
        labels={"model": label or teacher.get("model") or teacher.get("local") or "teacher", "dataset": f"{rows} rows"},
    )  # fmt: skip


def topics_parse(text: str) -> list[dict[str, Any]]:
    """A tree typed as lines: a topic per line, its subtopics below it starting with "-"."""
    tree: list[dict[str, Any]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(("-", "*", "•")):
            if not tree:
                raise ValidationError("A subtopic (a line starting with -) needs a topic line above it.")
            tree[-1]["subtopics"].append(stripped.lstrip("-*• ").strip()[:120])
        else:
            tree.append({"name": stripped[:120], "subtopics": []})
    if not tree:
        raise ValidationError("Give at least one topic.")
    return tree


def topics_text(tree: list[dict[str, Any]]) -> str:
    return "\n".join("\n".join([t["name"], *(f"- {s}" for s in t.get("subtopics") or [])]) for t in tree)


def generation_run(*, root: Job, user: User, tree: list[dict[str, Any]], rows: int | None = None) -> Job:
    """Generate rows from the tree as a person left it: a new job in the generation's chain."""
    from workers.training.spec import SpecError, new_synthesis_spec

    _require_editor(project=root.project, actor=user)
    try:
        spec = new_synthesis_spec(
            **{**root.spec, "stage": "all", "topics": tree, "rows": rows or root.spec["rows"]}
        )
    except (SpecError, TypeError) as exc:  # TypeError: a row with a field no generation has
        raise ValidationError(str(exc)) from exc
    return job_create(
        project=root.project, user=user, name=f"{root.name} (rows)", spec=spec, kind=Kind.SYNTHESIS,
        auto_evaluate=False, parent=root, labels={**root.labels, "dataset": f"{spec['rows']} rows"},
    )  # fmt: skip


def generation_after_run(job: Job) -> int:
    """Import the rows a finished generation wrote, for curation; how many. Safe to run twice."""
    if not job.is_synthesis or job.status != Status.SUCCEEDED or job.spec.get("stage") != "all":
        return 0
    rows_file, origin_file = job.files.rows, job.files.provenance
    if not rows_file.exists():
        return 0
    rows = [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()]
    origins = (
        [json.loads(line) for line in origin_file.read_text().splitlines() if line.strip()]
        if origin_file.exists()
        else []
    )
    origins += [{}] * (len(rows) - len(origins))
    GeneratedRow.objects.bulk_create(
        [GeneratedRow(job=job, index=i, topic=str(o.get("topic", ""))[:300], data=r, original=r, provenance=o)
         for i, (r, o) in enumerate(zip(rows, origins, strict=False))],
        ignore_conflicts=True,
    )  # fmt: skip
    return len(rows)


def rows_set_verdict(*, job: Job, user: User, ids: list[int], verdict: str) -> int:
    _require_editor(project=job.project, actor=user)
    if verdict not in Verdict.values:
        raise ValidationError("Accept or reject.")
    return GeneratedRow.objects.filter(job=job, pk__in=ids).update(verdict=verdict)


def row_edit(*, row: GeneratedRow, user: User, data: dict[str, str]) -> GeneratedRow:
    """Change a row's text; it stays in the technique's columns with none left empty."""
    _require_editor(project=row.job.project, actor=user)
    changed = {k: str(data.get(k, row.data.get(k, ""))).strip() for k in row.data}
    empty = [k for k, v in changed.items() if not v]
    if empty:
        raise ValidationError(f"“{empty[0]}” cannot be empty.")
    row.data, row.edited = changed, changed != row.original
    row.save(update_fields=["data", "edited"])
    return row


@transaction.atomic
def generation_save_dataset(*, job: Job, user: User, name: str) -> Dataset:
    """The accepted rows as a dataset of the project (JSONL), with each row's provenance beside it."""
    _require_editor(project=job.project, actor=user)
    accepted = list(GeneratedRow.objects.filter(job=job, verdict=Verdict.ACCEPTED).order_by("index"))
    if not accepted:
        raise ValidationError("Accept at least one row first.")
    name = (name.strip() or f"generated-{job.pk}")[:150]
    name = name if name.endswith(".jsonl") else f"{name}.jsonl"
    target = dataset_services.new_file(job.project_id, ".jsonl")
    folder = target.parent
    target.write_text("".join(json.dumps(r.data, ensure_ascii=False) + "\n" for r in accepted))
    (folder / "provenance.jsonl").write_text("".join(
        json.dumps({**r.provenance, "generation_job": job.pk, "row": r.index, "edited": r.edited,
                    **({"original": r.original} if r.edited else {})}, ensure_ascii=False) + "\n"
        for r in accepted
    ))  # fmt: skip
    return Dataset.objects.create(
        project=job.project, created_by=user, name=name, path=str(target),
        size_bytes=target.stat().st_size, **dataset_services.check_rows(target, label=name),
    )  # fmt: skip


def documents_discard(paths: list[str]) -> None:
    """Remove documents saved for a generation that was not started (the form refused something else)."""
    for folder in {Path(p).parent for p in paths}:
        shutil.rmtree(folder, ignore_errors=True)


def teacher_fit_problem(
    *,
    project_id: int,
    technique: str,
    description: str,
    teacher: dict[str, Any],
    seeds: list[dict[str, Any]] | None = None,
    documents: list[str] | None = None,
    topics: list[dict[str, Any]] | None = None,
) -> str | None:
    """Why the teacher (one of the project's endpoints, or a local model) cannot read the largest request
    the pipeline would send it and write its answer, with the numbers; None when it can or when its
    context is unknown (a URL teacher). The requests are the pipeline's own (topic_request and
    example_request) with the longest document chunks; before the topic tree exists, the example
    requests are measured with a topic as long as the pipeline's own fallback topic (the description's
    first 120 characters), and the tree's page checks again with the real topics."""
    from apps.core import fit
    from apps.endpoints.models import Endpoint
    from workers.training.synthetic.documents import load_documents
    from workers.training.synthetic.pipeline import SynthSpec, example_request, topic_request

    if teacher.get("endpoint"):
        endpoint = Endpoint.objects.filter(project_id=project_id, pk=teacher["endpoint"], active=True).first()
        if endpoint is None:
            return None
        folder, model = fit.endpoint_model(endpoint)
    elif teacher.get("local"):
        local = str(teacher["local"])
        folder = fit.model_folder(local)
        model = fit.model_name(folder, local) if folder else local
    else:
        return None
    spec = SynthSpec(technique=technique, description=description.strip(), teacher=teacher,
                     seeds=seeds or [], documents=documents or [], topics=topics)  # fmt: skip
    try:
        chunks = load_documents(spec.documents)
    except DocumentError:
        return None  # said by documents_save
    passages = fit.longest((len(c.text), c) for c in chunks) or [None]
    leaves = schema.leaves(topics) if topics else [spec.description[:120]]
    named = fit.longest((len(t), t) for t in leaves)[:3]
    requests = [topic_request(spec, chunks)] if not topics else []
    requests += [
        example_request(spec, topic, chunk, spec.per_request) for topic in named for chunk in passages
    ]
    found = fit.fit(folder, model, requests, answer=spec.max_tokens)
    if found is None or found.fits:
        return None
    numbers = found.numbers("The teacher's")
    return f"{numbers} Shorten the description, give fewer seeds, or choose a teacher that reads more."
