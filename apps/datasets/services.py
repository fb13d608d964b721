"""Uploading, surveying, mapping and deleting datasets. The upload is streamed to disk in chunks with a size
cap, so a large file never sits in memory and an oversized one is stopped early; a file in another
encoding is converted to UTF-8 once, with a notice; a file with bad lines is kept with its good rows (the
bad lines are listed by the survey); nothing is kept of a file that cannot be read at all."""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from apps.datasets.models import Dataset
from apps.projects.models import Project
from workers.training import data
from workers.training.formats import AUTO, TARGETS, Mapping
from workers.training.techniques import REGISTRY

SUFFIXES = data.SUFFIXES
TECHNIQUES = tuple(REGISTRY)  # a dataset is checked against each
ROWS_FILE = "rows"  # every dataset's file is rows.<suffix> in its own folder; the user's name is only a label
ACCEPTS = "Atelier reads .jsonl, .json, .csv, .tsv and .parquet files."
# What a dataset's stored survey says of how its file came to be (converted to UTF-8, imported from the
# Hugging Face cache): no later survey of the file sees it, so each keeps it from the stored one.
PROVENANCE = ("converted", "origin")


def _size(n: int) -> str:
    return f"{n / 1024**2:.1f} MB" if n >= 1024**2 else f"{n / 1024:.0f} KB"


def new_file(project_id: int, suffix: str) -> Path:
    """Where a new dataset's rows go: a folder of its own, named by a fresh id, and a file whose name
    no user chooses. A user's name for the file once chose it, so saving generated rows as
    "provenance" wrote the rows over the provenance file beside them (or the reverse)."""
    folder = Path(settings.DATA_DIR) / "projects" / str(project_id) / "datasets" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder / f"{ROWS_FILE}{suffix}"


def _people(exc: Exception, path: Path, label: str) -> ValidationError:
    """A reading error as a person's message, naming the file as they know it."""
    if isinstance(exc, data.DataError):
        return ValidationError(str(exc).replace(path.name, label))
    return ValidationError(f"{label} could not be read: {exc}")


# Surveys and previews are kept once made (DATA_DIR/cache/surveys), under a key of everything they read:
# the file's path, size and modification time, the mapping, the model's tokenizer files, the eval file.
# A page showing a dataset reads the kept JSON instead of the whole file again (the Data step of a 40,000-row
# upload took 3.5 s a render, bench/web.py); a changed file or mapping is another key.
CACHE_VERSION = 1


def _stamp(path: Path | str | None) -> list[Any] | None:
    """A file's identity in a cache key: its path, size and modification time."""
    if not path:
        return None
    try:
        stat = Path(path).stat()
    except OSError:
        return [str(path)]
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _model_stamp(model: str | None) -> list[Any] | None:
    if not model:
        return None
    folder = Path(model)
    files = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
    return [model, *(_stamp(folder / name) for name in files)] if folder.is_dir() else [model]


def survey_key(
    path: Path | str, mapping: dict[str, Any] | None = None, *, label: str | None = None, model: str | None = None,
    eval_path: str | None = None, eval_mapping: dict[str, Any] | None = None, keep: int = 2000,
) -> dict[str, Any]:  # fmt: skip
    """What a survey (and a preview made from its sample) depends on: its cache key."""
    return {
        "file": _stamp(path), "mapping": Mapping.of(mapping).as_dict(), "label": label or Path(path).name,
        "model": _model_stamp(model), "eval": [_stamp(eval_path), Mapping.of(eval_mapping).as_dict()] if eval_path else None,
        "keep": keep,
    }  # fmt: skip


def memo(kind: str, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
    """compute()'s JSON-able value, made once per key and kept in DATA_DIR/cache/surveys (written whole
    or not at all, so two requests making it at once both leave a complete file)."""
    digest = hashlib.sha256(
        json.dumps([kind, CACHE_VERSION, key], sort_keys=True, default=str).encode()
    ).hexdigest()
    path = Path(settings.DATA_DIR) / "cache" / "surveys" / f"{kind}-{digest[:40]}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    text = json.dumps(compute(), default=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.partial")
    partial.write_text(text)
    partial.replace(path)
    return json.loads(text)  # what a later call reads: the same types


def survey(
    path: Path | str, mapping: dict[str, Any] | None = None, *, label: str | None = None, model: str | None = None,
    eval_path: str | None = None, eval_mapping: dict[str, Any] | None = None, keep: int = 2000,
) -> data.Survey:  # fmt: skip
    """The survey of a dataset file under a mapping (workers.training.data.survey), worded for people
    (ValidationError for a file that cannot be read), made once per file, mapping, model and eval file
    (memo). With `model`: rows longer than the model reads are found with its tokenizer (read from its
    files, no transformers); with `eval_path`: the training rows whose prompt is also in the eval file."""
    asked: dict[str, Any] = {
        "label": label,
        "model": model,
        "eval_path": eval_path,
        "eval_mapping": eval_mapping,
        "keep": keep,
    }
    return _kept_survey(survey_key(path, mapping, **asked), Path(path), mapping, **asked)


def survey_with_preview(
    path: Path | str, mapping: dict[str, Any] | None = None, *, model: str, label: str | None = None,
    eval_path: str | None = None, eval_mapping: dict[str, Any] | None = None,
) -> tuple[data.Survey, dict[str, Any]]:  # fmt: skip
    """The survey (as `survey`) and its sample through the model's chat template (apps.jobs.wizard.preview:
    the rows as training sees them, the token lengths' histogram), each made once under the same key:
    what the Data step and a dataset's page show."""
    from apps.jobs import wizard

    asked: dict[str, Any] = {
        "label": label,
        "model": model,
        "eval_path": eval_path,
        "eval_mapping": eval_mapping,
        "keep": 2000,
    }
    key = survey_key(path, mapping, **asked)
    found = _kept_survey(key, Path(path), mapping, **asked)
    return found, memo("preview", key, lambda: wizard.preview(model, found.sample))


def _kept_survey(
    key: dict[str, Any], path: Path, mapping: dict[str, Any] | None, **asked: Any
) -> data.Survey:
    """The survey under `key`, made by _survey when it is not kept yet."""
    found = memo("survey", key, lambda: dataclasses.asdict(_survey(path, mapping, **asked)))
    # JSON made the (line, message) and (line, tokens) pairs lists: the survey's own are tuples.
    pairs: dict[str, Any] = {
        name: [tuple(pair) for pair in found[name]] for name in ("unreadable", "long_rows")
    }
    pairs["checks"] = {
        technique: {**check, "errors": [tuple(pair) for pair in check.get("errors", [])]}
        for technique, check in found["checks"].items()
    }
    return data.Survey(**(found | pairs))


def _survey(
    path: Path, mapping: dict[str, Any] | None, *, label: str | None, model: str | None, eval_path: str | None,
    eval_mapping: dict[str, Any] | None, keep: int,
) -> data.Survey:  # fmt: skip
    label = label or path.name
    context, measure = None, None
    if model:
        context, measure = model_reader(model)
    exclude = None
    if eval_path:
        try:
            exclude = data.prompt_keys(eval_path, Mapping.of(eval_mapping))
        except (data.DataError, OSError):
            exclude = None  # the eval file's own problems are said where it is chosen
    try:
        return data.survey(path, Mapping.of(mapping), context=context, measure=measure, exclude=exclude,
                           label=label, keep=keep)  # fmt: skip
    except (data.DataError, OSError, UnicodeError, ValueError) as exc:
        raise _people(exc, path, label) from exc


def model_reader(model: str) -> tuple[int | None, Any]:
    """(the model's context in tokens, a row → its token count through the chat template), or
    (None, None) where the model's files cannot say."""
    from workers.training.model_files import ChatTokenizer, read_config
    from workers.training.models import ModelError
    from workers.training.spec import ModelRef

    try:
        ref = ModelRef(model)
        tokenizer = ChatTokenizer.for_model(ref)
        config = read_config(ref)
    except (ModelError, OSError, ValueError, KeyError):
        return None, None
    context = getattr(config, "max_position_embeddings", None)

    def measure(row: dict[str, Any]) -> int:
        try:
            return len(tokenizer(data.render_row(tokenizer, row), add_special_tokens=False)["input_ids"])
        except (KeyError, ValueError, TypeError):
            return 0

    return (int(context) if context else None), measure


def stored(found: data.Survey) -> dict[str, Any]:
    """A survey as a Dataset keeps it: the fields the list shows, the rest under `survey`."""
    return {
        "rows": found.rows,
        "columns": found.file_columns,
        "checks": found.checks,
        "survey": found.as_dict(),
    }


def check_rows(
    path: Path, mapping: dict[str, Any] | None = None, *, label: str | None = None
) -> dict[str, Any]:
    """The stored survey of a dataset file (stored)."""
    return stored(survey(path, mapping, label=label))


def upload_to_disk(upload: UploadedFile, target: Path, *, cap: int, over: str | dict[str, str]) -> int:
    """Stream an upload to `target` in chunks, never whole in memory, stopping with ValidationError(over)
    once it passes `cap` bytes; the bytes written. The caller removes what a failed upload left."""
    written = 0
    with target.open("wb") as out:
        for chunk in upload.chunks():
            written += len(chunk)
            if written > cap:
                raise ValidationError(over)
            out.write(chunk)
    return written


def to_utf8(path: Path, label: str) -> str:
    """Convert a text file in another encoding to UTF-8 in place, streamed; the notice to show (empty
    when it was UTF-8 already). A UTF-8 BOM is dropped: other tools then read the first column's name."""
    kind = data.kind_of(path, label)
    if kind.reader not in ("jsonl", "json-array", "csv") or kind.encoding == "utf-8":
        return ""
    converted = path.with_suffix(path.suffix + ".utf8")
    with (
        path.open(encoding=kind.encoding, errors="replace", newline="") as src,
        converted.open("w", encoding="utf-8", newline="") as out,
    ):
        first = True
        while chunk := src.read(1 << 20):
            if first:
                chunk = chunk.lstrip(codecs.BOM_UTF8.decode("utf-8"))
                first = False
            out.write(chunk)
    converted.replace(path)
    return kind.notice


def _keep(*, project: Project, user: User, name: str, target: Path, size: int, origin: str = "") -> Dataset:
    """Survey a new dataset file (converted to UTF-8 when it was not) and keep it as a Dataset; a
    ValidationError on "file" when no line of it is a row. The caller removes the folder on failure."""
    try:
        notice = to_utf8(target, name)
        found = stored(survey(target, label=name))
    except data.DataError as exc:
        raise ValidationError({"file": [str(exc).replace(target.name, name)]}) from exc
    except ValidationError as exc:
        raise ValidationError({"file": exc.messages}) from exc
    if not found["rows"]:
        bad = found["survey"]["unreadable"]
        raise ValidationError({"file": [
            f"No line of {name} could be read as a row: " + data.bad_lines(bad, name, found["survey"]["unreadable_count"])
        ]})  # fmt: skip
    found["survey"]["converted"] = notice  # the file is UTF-8 now: its survey no longer sees it
    found["survey"]["origin"] = origin
    return Dataset.objects.create(project=project, created_by=user, name=name, path=str(target),
                                  size_bytes=size, **found)  # fmt: skip


def dataset_upload(*, project: Project, user: User, upload: UploadedFile) -> Dataset:
    name = Path(upload.name or "dataset").name
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValidationError({"file": f"{name}: {ACCEPTS}"})
    cap = settings.DATASET_MAX_BYTES
    if upload.size is not None and upload.size > cap:
        raise ValidationError({"file": f"{name} is {_size(upload.size)}; the limit is {_size(cap)}."})
    target = new_file(project.pk, suffix)
    try:
        written = upload_to_disk(
            upload, target, cap=cap, over={"file": f"{name} is over the limit of {_size(cap)}."}
        )
        if written == 0:
            raise ValidationError({"file": f"{name} is empty."})
        return _keep(project=project, user=user, name=name, target=target, size=written)
    except BaseException:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise


HUB_PREFIXES = ("hf:", "https://huggingface.co/datasets/", "huggingface.co/datasets/")


def dataset_from_hub(
    *, project: Project, user: User, repo_id: str, subset: str = "", split: str = ""
) -> Dataset:
    """A split of a Hugging Face dataset in this machine's cache (HF_HOME) kept as a project dataset:
    written once as Parquet into the dataset's own folder (so it is read, mapped, browsed and trained
    on as an upload is, and a later change to the cache changes nothing here). ValidationError on
    "hub_id" for an id that is not here, a split or subset it does not have, or one over the size cap."""
    repo_id = repo_id.strip()
    for prefix in HUB_PREFIXES:
        repo_id = repo_id.removeprefix(prefix)
    repo_id = repo_id.strip("/")
    subset, split = subset.strip(), split.strip() or "train"
    name = f"{repo_id} ({subset + ', ' if subset else ''}{split})"
    target = new_file(project.pk, ".parquet")
    cache = target.parent / "arrow-cache"
    cap = settings.DATASET_MAX_BYTES
    try:
        try:
            snapshot = data.hub_snapshot(repo_id)
            loaded = data.hub_dataset(repo_id, subset=subset or None, split=split, cache_dir=str(cache),
                                      folder=snapshot)  # fmt: skip
            loaded.to_parquet(str(target))
        except data.DataError as exc:
            raise ValidationError({"hub_id": str(exc)}) from exc
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        size = target.stat().st_size
        if size > cap:
            raise ValidationError(
                {"hub_id": f"{name} is {_size(size)} as Parquet; the limit is {_size(cap)}."}
            )
        origin = f"From this machine's Hugging Face cache: {repo_id}, " + (f"subset {subset}, " if subset else "") + (
            f"split {split}, revision {snapshot.name[:12]}."
        )  # fmt: skip
        try:
            return _keep(project=project, user=user, name=name, target=target, size=size, origin=origin)
        except ValidationError as exc:
            raise ValidationError({"hub_id": exc.messages}) from exc
    except BaseException:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise


def posted_mapping(values: Any) -> dict[str, Any]:
    """The mapping table as a form posts it (map_<needed column>: a file column; format), as a
    formats.Mapping dict: the wizard's Data step and a dataset's page post the same table."""
    columns = {t: str(v).strip() for t in TARGETS if str(v := values.get(f"map_{t}") or "").strip()}
    return Mapping(columns, values.get("format") or AUTO).as_dict()


def file_columns(path: Path | str) -> list[str]:
    """A dataset file's own columns (of its first rows, as the survey names them), read without a pass
    over the whole file."""
    return data.converted(data.records(path), Mapping({})).file_columns


def mapping_problem(mapping: dict[str, Any], columns: list[str]) -> str | None:
    """Why a mapping table cannot apply to a file with these columns, or None."""
    chosen = Mapping.of(mapping).columns
    missing = sorted({c for c in chosen.values() if c not in columns})
    if missing:
        return f"The file has no column {', '.join(missing)}: choose among {', '.join(columns)}."
    twice = sorted({c for c in chosen.values() if list(chosen.values()).count(c) > 1})
    if twice:
        return f"“{twice[0]}” is chosen for more than one column: a file column fills one."
    return None


def provenance(stored_survey: dict[str, Any] | None) -> dict[str, str]:
    """The PROVENANCE notices of a dataset's stored survey, to show beside a fresh survey of its file."""
    return {k: (stored_survey or {}).get(k, "") for k in PROVENANCE}


def dataset_remap(*, dataset: Dataset, mapping: dict[str, Any]) -> Dataset:
    """Save a dataset's mapping and its survey under it (ValidationError if the file cannot be read)."""
    chosen = Mapping.of(mapping).as_dict()
    if chosen == Mapping.of(dataset.mapping).as_dict() and dataset.survey:
        return dataset
    found = stored(survey(dataset.file, chosen, label=dataset.name))
    found["survey"] |= provenance(dataset.survey)
    for key, value in found.items():
        setattr(dataset, key, value)
    dataset.mapping = chosen
    dataset.save(update_fields=["mapping", "rows", "columns", "checks", "survey"])
    return dataset


def dataset_delete(*, dataset: Dataset, user: User) -> None:
    """Delete a dataset and its folder. The jobs trained on it keep their own copy of its rows (the
    launch writes them to the job's split), so no job loses anything."""
    from apps.projects.models import Membership

    membership = Membership.objects.filter(user=user, project_id=dataset.project_id).first()
    if membership is None or not membership.can_edit:
        raise PermissionDenied("Viewers cannot delete datasets.")
    folder = dataset.file.parent
    with transaction.atomic():
        dataset.delete()
    if folder.name != "datasets" and (Path(settings.DATA_DIR) / "projects") in folder.parents:
        shutil.rmtree(folder, ignore_errors=True)


def read(
    path: Path, *, label: str | None = None, mapping: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The readable rows of a dataset, converted by its mapping (for the few callers that need a list:
    seeds for the teacher). ValidationError, worded for people, for a file that cannot be read."""
    label = label or path.name
    try:
        found = data.converted(data.records(path), Mapping.of(mapping))
        rows = [r.row for r in found.records if r.row is not None]
    except (data.DataError, OSError, UnicodeError) as exc:
        raise _people(exc, path, label) from exc
    if not rows:
        raise ValidationError(f"{label} is empty: it has no rows.")
    return rows


def browse(
    dataset: Dataset, *, query: str = "", page: int = 1, per_page: int = 25
) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """One page of a dataset's rows, converted by its mapping, as (line, row); with `query`, the rows whose
    text holds it (case folded). Streams: a page deep in a large file costs a read, never its memory.
    (rows, whether there are more)."""
    needle = query.casefold().strip()
    skip = (max(1, page) - 1) * per_page
    shown: list[tuple[int, dict[str, Any]]] = []
    try:
        found = data.converted(data.records(dataset.file), Mapping.of(dataset.mapping))
        for record in found.records:
            if record.row is None:
                continue
            if needle and needle not in json.dumps(record.row, ensure_ascii=False).casefold():
                continue
            if skip:
                skip -= 1
                continue
            if len(shown) == per_page:
                return shown, True
            shown.append((record.line, record.row))
    except (data.DataError, OSError, UnicodeError):
        pass
    return shown, False


def download(dataset: Dataset) -> Iterator[bytes]:
    with dataset.file.open("rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk
