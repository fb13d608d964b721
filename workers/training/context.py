"""How much a model reads, and how many tokens a chat request is to it, from the model's folder alone.

The web app's forms ask this before a judge or a teacher is launched, so a model whose context is too
small is refused on the form with the numbers, not after launch (the engine would answer "The prompt is
380 tokens; this model reads at most 256 tokens" for every request of the run). No torch and no
transformers, so the web process can import it: the chat template is rendered and counted by
workers.training.model_files, as transformers renders and counts it (a test checks the count equals
apply_chat_template's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workers.training.model_files import ChatTokenizer, TemplateRefused, model_config
from workers.training.models import ModelError

# Where a config says how many positions a model reads, in the order transformers' models use them.
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


class TokensUnknown(ValueError):
    """The folder's requests cannot be counted here: no tokenizer.json, no chat template, or a template
    that refuses the request."""


def model_context(folder: Path | str) -> int | None:
    """The most tokens the model reads (prompt and answer together), from its config.json; None when the
    folder does not say. A multimodal config keeps its language model's under "text_config"."""
    config = model_config(folder)
    for section in (config, config.get("text_config") or {}):
        for key in CONTEXT_KEYS:
            value = section.get(key) if isinstance(section, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def count_tokens(folder: Path | str, messages: list[dict[str, Any]]) -> int:
    """Tokens of the chat request as the model's server sees it: the chat template rendered with the
    generation prompt, tokenized without special tokens added (the template writes its own), which is
    what the built-in engine (workers/serving/engine.py) and transformers' apply_chat_template do.
    TokensUnknown when the folder has no tokenizer.json or no chat template."""
    folder = Path(folder).resolve()
    try:
        tokenizer = ChatTokenizer(folder)
    except ModelError as exc:  # no tokenizer.json, or one the tokenizers library cannot read
        raise TokensUnknown(str(exc)) from exc
    if tokenizer.chat_template is None:
        raise TokensUnknown(f"{folder} has no chat template.")
    try:
        return len(tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True))
    except TemplateRefused as exc:  # e.g. a template that refuses a system message
        raise TokensUnknown(f"The chat template of {folder} refused the request: {exc}") from exc
