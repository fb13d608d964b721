"""Uploading and checking datasets. The upload is streamed to disk in chunks with a size cap, so a large
file never sits in memory and an oversized one is stopped early; nothing is kept of a file that failed."""

from __future__ import annotations

import json
import shutil
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from apps.datasets.models import Dataset
from apps.projects.models import Project
from workers.training.techniques import REGISTRY

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
TECHNIQUES = tuple(REGISTRY)  # a dataset is checked against each
ERRORS_SHOWN = 100
ROWS_FILE = "rows"  # every dataset's file is rows.<suffix> in its own folder; the user's name is only a label


def _size(n: int) -> str:
    return f"{n / 1024**2:.1f} MB" if n >= 1024**2 else f"{n / 1024:.0f} KB"


def new_file(project_id: int, suffix: str) -> Path:
    """Where a new dataset's rows go: a folder of its own, named by a fresh id, and a file whose name
    no user chooses. A user's name for the file once chose it, so saving generated rows as
    "provenance" wrote the rows over the provenance file beside them (or the reverse)."""
    folder = Path(settings.DATA_DIR) / "projects" / str(project_id) / "datasets" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder / f"{ROWS_FILE}{suffix}"


def read(path: Path, *, label: str | None = None) -> list[dict[str, Any]]:
    """The rows of a dataset file. Raises ValidationError, worded for people, for a file that cannot be read;
    `label` is the name the person knows the file by (the name it was uploaded with)."""
    from workers.training import data

    label = label or path.name
    try:
        rows = data.read_rows(path)
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{label} is not UTF-8 text (byte {exc.start} cannot be read). Save it as UTF-8 and upload it again."
        ) from exc
    except data.DataError as exc:
        raise ValidationError(str(exc).replace(path.name, label)) from exc
    except Exception as exc:
        raise ValidationError(f"{label} could not be read: {exc}") from exc
    if not rows:
        raise ValidationError(f"{label} is empty: it has no rows.")
    return rows


def check_rows(
    path: Path, column_map: dict[str, str] | None = None, *, label: str | None = None
) -> tuple[int, list[str], dict[str, Any]]:
    """(rows, columns, checks per technique) of a dataset file."""
    rows = read(path, label=label)
    return (len(rows), *check(rows, column_map))


def check(
    rows: list[dict[str, Any]], column_map: dict[str, str] | None = None
) -> tuple[list[str], dict[str, Any]]:
    """(columns, checks per technique): which techniques the rows fit, their bad rows by line, or why not."""
    from workers.training import data

    columns = sorted(set().union(*(row.keys() for row in rows)))
    checks: dict[str, Any] = {}
    for technique in TECHNIQUES:
        try:
            result = data.validate(rows, technique, column_map)
        except data.DataError as exc:
            checks[technique] = {"ok": False, "good": 0, "errors": [], "error_count": 0, "message": str(exc)}
            continue
        checks[technique] = {
            "ok": not result.errors and bool(result.rows), "good": len(result.rows),
            "errors": result.errors[:ERRORS_SHOWN], "error_count": len(result.errors), "message": "",
        }  # fmt: skip
    return columns, checks


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


def dataset_upload(*, project: Project, user: User, upload: UploadedFile) -> Dataset:
    name = Path(upload.name or "dataset").name
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValidationError({"file": f"{name}: Atelier reads .jsonl, .csv and .parquet files."})
    cap = settings.DATASET_MAX_BYTES
    if upload.size is not None and upload.size > cap:
        raise ValidationError({"file": f"{name} is {_size(upload.size)}; the limit is {_size(cap)}."})
    target = new_file(project.pk, suffix)
    folder = target.parent
    try:
        written = upload_to_disk(
            upload, target, cap=cap, over={"file": f"{name} is over the limit of {_size(cap)}."}
        )
        if written == 0:
            raise ValidationError({"file": f"{name} is empty."})
        try:
            rows, columns, checks = check_rows(target, label=name)
        except ValidationError as exc:
            raise ValidationError({"file": exc.messages}) from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Dataset.objects.create(
        project=project, created_by=user, name=name, path=str(target), size_bytes=written,
        rows=rows, columns=columns, checks=checks,
    )  # fmt: skip


def duplicates(rows: list[dict[str, Any]]) -> int:
    """How many rows repeat an earlier row exactly."""
    counts = Counter(json.dumps(row, sort_keys=True, default=str) for row in rows)
    return sum(n - 1 for n in counts.values() if n > 1)
