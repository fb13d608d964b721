"""Whether a judge's or a teacher's requests fit in what its model reads, checked on the form with the
numbers before anything is launched: the longest request the run would send, in the model's own
tokens (workers.training.context), plus the most it may answer, against its context. A model reached by
URL has an unknown context and is not checked; an endpoint's model is its base folder (an adapter
endpoint reads what its base reads)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.jobs.model_sources import BUILTIN
from workers.training import judge
from workers.training.context import TokensUnknown, count_tokens, model_context

# How many of the longest candidates (by characters) are counted in tokens: characters and tokens rise
# together closely enough that the longest request in tokens is among them, and counting every row of a
# large dataset would make the form wait.
COUNTED = 20


@dataclass(frozen=True)
class Fit:
    request: int  # tokens of the longest request
    answer: int  # the most tokens it may answer with
    context: int  # the most the model reads, request and answer together
    model: str  # the model, as people read it

    @property
    def fits(self) -> bool:
        return self.request + self.answer <= self.context

    def numbers(self, who: str) -> str:
        return (
            f"{who} longest request is {self.request:,} tokens and it may answer with {self.answer:,}; "
            f"{self.model} reads at most {self.context:,} tokens."
        )


def model_folder(model: str) -> Path | None:
    """The folder that holds a model's config and tokenizer on this machine: the folder itself, an
    adapter's base, or a Hugging Face id's downloaded snapshot; None when it is not here."""
    if not model:
        return None
    path = Path(model)
    if path.is_absolute() or model.startswith("."):
        if (path / "config.json").is_file():
            return path
        adapter = path / "adapter_config.json"
        if adapter.is_file():
            try:
                base = json.loads(adapter.read_text()).get("base_model_name_or_path")
            except (OSError, ValueError, AttributeError):
                return None
            return model_folder(base) if isinstance(base, str) and base != model else None
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
    except Exception:  # noqa: BLE001 - not a valid id, no cache: unknown, so not checked
        return None
    return Path(cached).parent if isinstance(cached, str) else None


def model_name(folder: Path, fallback: str) -> str:
    """`atelier-tiny/partial` for a built-in model's folder, else `fallback`."""
    tiny = Path(os.path.realpath(Path(settings.DATA_DIR) / "models" / BUILTIN))
    real = Path(os.path.realpath(folder))
    return f"{BUILTIN}/{real.name}" if real.parent == tiny else fallback


def endpoint_model(endpoint: Any) -> tuple[Path | None, str]:
    """(the folder an endpoint's model reads with, how people read it)."""
    folder = model_folder(endpoint.base)
    known = model_name(folder, endpoint.label or endpoint.base) if folder else endpoint.base
    return folder, f"the endpoint {endpoint.name} ({known})"


def longest(texts: Iterable[tuple[int, Any]]) -> list[Any]:
    """The COUNTED items with the most characters, from (characters, item) pairs."""
    return [item for _, item in sorted(texts, key=lambda pair: -pair[0])[:COUNTED]]


def fit(
    folder: Path | None, model: str, requests: Iterable[list[dict[str, Any]]], answer: int, extra: int = 0
) -> Fit | None:
    """The longest of `requests` (each a chat, plus `extra` tokens each: an answer that is not written
    yet) against the model's context; None when the folder, its context or its tokenizer is unknown."""
    if folder is None or (context := model_context(folder)) is None:
        return None
    try:
        request = max((count_tokens(folder, messages) for messages in requests), default=0)
    except TokensUnknown:
        return None
    return Fit(request=request + extra, answer=answer, context=context, model=model)


# The judge's requests, as workers.training.judge (the module that sends them) builds them.
JUDGE_SCORE_TOKENS = judge.SCORE_TOKENS
score_messages = judge.score_messages
review_messages = judge.review_messages
compare_messages = judge.compare_messages
JUDGE_REASON_TOKENS = 256  # Judge.reason_tokens: a review's or a comparison's reasoning and verdict
