from __future__ import annotations

from typing import Any

from django import template

from apps.jobs.lineage import job_lineage

register = template.Library()


@register.inclusion_tag("endpoints/_chain.html")
def model_chain(job: Any, always: bool = True) -> dict[str, Any]:
    """The chain a job's model was trained through (base → SFT #3 → DPO #24), each job a link. With
    always=False it shows only for a job that started from an earlier job (a plain job's page already
    names its base)."""
    chain = job_lineage(job) if job is not None else []
    return {
        "chain": chain if always or len(chain) > 2 else [],
        "project_id": getattr(job, "project_id", None),
        "paragraph": not always,  # on a job's page, a line of its own under the heading
    }
