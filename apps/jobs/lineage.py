"""Where a job's model came from: the chain of earlier jobs it was trained from, back to the base model
("atelier-tiny/partial → SFT #3 → DPO #24"). A job that starts from an earlier job's model has that
job's output folder in its spec (the wizard's "job:N" and Continue training write `model_artifact`), so
the chain is walked through the folders, within the job's own project."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.jobs.model_sources import BUILTIN, is_path
from apps.jobs.models import Job

JOB_FOLDER = re.compile(r"^(\d+)-([0-9a-f]+)$")  # Job.output_dir's name: "<pk>-<folder>"
LONGEST = 50  # a chain longer than this is cut (a hand-edited spec could point in a circle)


@dataclass(frozen=True)
class Link:
    """One model in a chain: a job's result, or the base model the first job started from."""

    label: str  # "SFT #3", or "atelier-tiny/partial"
    job: Job | None = None
    title: str = ""  # the full reference of a base model, for a tooltip


def spec_model(spec: dict[str, Any]) -> str:
    model = (spec or {}).get("model")
    return str(model.get("name_or_path") if isinstance(model, dict) else model or "")


def job_of_model(model: str, *, project_id: int) -> Job | None:
    """The job of this project whose output folder holds `model` (its adapter, full model or merge)."""
    if not is_path(model):
        return None
    folder = Path(os.path.realpath(model)).parent
    jobs = Path(os.path.realpath(Path(settings.DATA_DIR) / "jobs"))
    match = JOB_FOLDER.match(folder.name)
    if folder.parent != jobs or match is None:
        return None
    return Job.objects.filter(pk=int(match[1]), folder=match[2], project_id=project_id).first()


def base_label(model: str) -> str:
    """A base model as people name it: the built-in model by its name, a hub id as it is, a folder by
    its own name."""
    if not is_path(model):
        return model
    path = Path(os.path.realpath(model))
    tiny = Path(os.path.realpath(Path(settings.DATA_DIR) / "models" / BUILTIN))
    return f"{BUILTIN}/{path.name}" if path.parent == tiny else path.name


def job_lineage(job: Job) -> list[Link]:
    """The chain from the base model to this job, oldest first: [base, first job, ..., this job]."""
    links: list[Link] = []
    seen: set[int] = set()
    current: Job | None = job
    while current is not None and current.pk not in seen and len(links) < LONGEST:
        seen.add(current.pk)
        links.append(Link(f"{current.technique.upper()} #{current.pk}", current))
        model = spec_model(current.spec)
        parent = job_of_model(model, project_id=current.project_id)
        if parent is None:
            links.append(Link(base_label(model), None, model))
        current = parent
    return links[::-1]
