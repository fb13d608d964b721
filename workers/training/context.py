"""How much a model reads, and how many tokens a chat request is to it, from the model's folder alone.

The web app's forms ask this before a judge or a teacher is launched, so a model whose context is too
small is refused on the form with the numbers, not after launch (the engine would answer "The prompt is
380 tokens; this model reads at most 256 tokens" for every request of the run). No torch and no
transformers, so the web process can import it: the chat template is rendered with jinja2 as
transformers renders it, and counted with the `tokenizers` library from tokenizer.json, which is what
transformers' fast tokenizers are (a test checks the count equals apply_chat_template's).
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

# Where a config says how many positions a model reads, in the order transformers' models use them.
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
SPECIAL_TOKENS = (
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
)  # fmt: skip


class TokensUnknown(ValueError):
    """The folder's requests cannot be counted here: no tokenizer.json, no chat template, or a template
    that refuses the request."""


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def model_context(folder: Path | str) -> int | None:
    """The most tokens the model reads (prompt and answer together), from its config.json; None when the
    folder does not say. A multimodal config keeps its language model's under "text_config"."""
    config = _json(Path(folder) / "config.json")
    for section in (config, config.get("text_config") or {}):
        for key in CONTEXT_KEYS:
            value = section.get(key) if isinstance(section, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def chat_template(folder: Path | str) -> str | None:
    """The folder's chat template: chat_template.jinja (where transformers 5 saves it), else
    tokenizer_config.json's "chat_template" (a string, or a list of named templates: the default one)."""
    folder = Path(folder)
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    found = _json(folder / "tokenizer_config.json").get("chat_template")
    if isinstance(found, str):
        return found
    if isinstance(found, list):
        named = {t.get("name"): t.get("template") for t in found if isinstance(t, dict)}
        template = named.get("default")
        return template if isinstance(template, str) else None
    return None


def count_tokens(folder: Path | str, messages: list[dict[str, Any]]) -> int:
    """Tokens of the chat request as the model's server sees it: the chat template rendered with the
    generation prompt, tokenized without special tokens added (the template writes its own), which is
    what the built-in engine (workers/serving/engine.py) and transformers' apply_chat_template do.
    TokensUnknown when the folder has no tokenizer.json or no chat template."""
    folder = Path(folder).resolve()
    tokenizer_file = folder / "tokenizer.json"
    template = chat_template(folder)
    if not tokenizer_file.is_file() or template is None:
        raise TokensUnknown(f"{folder} has no tokenizer.json or no chat template.")
    import jinja2

    try:
        text = render_chat(folder, template, messages)
        tokenizer = _tokenizer(str(tokenizer_file), tokenizer_file.stat().st_mtime_ns)
    except jinja2.TemplateError as exc:  # e.g. a template that refuses a system message
        raise TokensUnknown(f"The chat template of {folder} refused the request: {exc}") from exc
    except Exception as exc:  # tokenizers raises its own kinds for a file it cannot read
        raise TokensUnknown(f"The tokenizer of {folder} could not be read: {exc}") from exc
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def render_chat(folder: Path, template: str, messages: list[dict[str, Any]]) -> str:
    special = {}
    config = _json(folder / "tokenizer_config.json")
    for name in SPECIAL_TOKENS:
        value = config.get(name)
        if isinstance(value, dict):  # {"content": "<s>", ...} in older configs
            value = value.get("content")
        if isinstance(value, str):
            special[name] = value
    return str(
        _compiled(template).render(
            messages=messages, tools=None, documents=None, add_generation_prompt=True, **special
        )
    )


@lru_cache(maxsize=8)
def _tokenizer(path: str, mtime_ns: int) -> Any:
    """Loaded once per file version (a large model's tokenizer.json takes a while to parse)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


@lru_cache(maxsize=16)
def _compiled(template: str) -> Any:
    """The template compiled as transformers compiles it: a sandbox, trimmed blocks, loop controls, its
    `tojson`, `raise_exception` and `strftime_now`, and its `{% generation %}` tags (which only mark the
    assistant's tokens for training masks, so here they render their body and nothing else)."""
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTags(jinja2.ext.Extension):
        tags = {"generation"}

        def parse(self, parser: Any) -> jinja2.nodes.Node:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.Scope(body).set_lineno(lineno)

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: Any = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTags, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)
