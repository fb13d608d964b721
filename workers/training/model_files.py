"""A model read from its files alone, with light libraries: its config.json as plain JSON, its
tokenizer.json with the `tokenizers` library (the Rust tokenizer that transformers' fast tokenizers
wrap) and its chat template rendered with jinja2 as transformers renders it. No torch and no
transformers, here or in any function below, so the web process can use it: the wizard's Data step
preview, the estimate on the Technique and Review steps, and the judge and teacher fit checks
(workers.training.context) read models this way. Loading a model for training or generation stays in
workers.training.models.

Measured on the 2-core development machine: with transformers' AutoTokenizer and AutoConfig, the first
Technique step of a fresh web process took 6.0 s and left the process at 366 MB (torch came with
transformers); read here, 0.46 s and 84 MB. The numbers are transformers' own:
tests/training/test_model_files.py renders and counts rows both ways and compares the shapes, and
tests/jobs/test_web_imports.py clicks through the wizard and finds neither imported.

Where the light reading can differ from transformers, and what happens then:
- a model without tokenizer.json (a SentencePiece-only repository, which transformers converts at load)
  cannot be read here: ModelError says so;
- a tokenizer class with its own constructor (e.g. LlamaTokenizer) is rebuilt by transformers from the
  vocabulary with its own pre-tokenizer; tokenizer.json is what that class saves, so the two agree for
  files saved by transformers, which is what the Hub holds;
- the config is read as transformers' config classes read it where their names are shared
  (config_namespace; tie_word_embeddings, which configs leave out at its default, defaulted per model
  type); ten of transformers' ~290 causal language models read the estimate's values under names of
  their own and get another shape (listed in the test); a multimodal config whose top level has no shape
  is read from its text_config, where AutoConfig gave none and the estimate failed.
"""

from __future__ import annotations

import json
import os
import threading
import types
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from workers.training.models import ModelError, hub_message, resolve
from workers.training.spec import ModelRef

# What transformers' tokenizer reads of a folder, and the config: all that a hub id's preview and
# estimate need from the Hub (a few hundred KB, never the weights).
LIGHT_FILES = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "additional_chat_templates/*.jinja",
]
REQUIRED_FILES = ("config.json", "tokenizer.json")
# transformers' named special tokens (PreTrainedTokenizerBase.SPECIAL_TOKENS_ATTRIBUTES): a chat template
# reads them as variables (`{{ bos_token }}`).
SPECIAL_TOKENS = (
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
)  # fmt: skip
# config.json names that transformers' config classes read under another name (their attribute_map),
# for the values the estimate and the plan read; the canonical name wins where both are present.
CONFIG_ALIASES = {
    "hidden_size": ("n_embd", "d_model", "emb_dim"),
    "num_hidden_layers": ("n_layer", "num_layers", "n_layers", "encoder_layers", "decoder_layers"),
    "num_attention_heads": (
        "n_head",
        "num_heads",
        "n_heads",
        "encoder_attention_heads",
        "decoder_attention_heads",
        "attention_heads",
    ),
    "max_position_embeddings": ("n_positions",),
}
# The model types (of transformers' causal language models) whose config class ties the output layer to
# the embeddings when config.json does not say: tie_word_embeddings defaults to True there, False in all
# others. Configs saved by transformers 4 leave it out exactly when it is that default (Gemma's on the
# Hub do): counted untied, its 256k-token vocabulary would count twice. tests/training/test_model_files.py
# checks the list against transformers' own classes.
TIED_BY_DEFAULT = frozenset({
    "bart", "bert", "bert-generation", "big_bird", "bigbird_pegasus", "biogpt", "blenderbot", "blenderbot-small",
    "bloom", "camembert", "cohere", "cohere2", "cohere2_moe", "cohere_compass_text", "cpmant", "ctrl",
    "data2vec-text", "electra", "ernie", "ernie4_5", "ernie4_5_moe", "falcon", "falcon_mamba", "gemma", "gemma2",
    "gemma3", "gemma3_text", "gemma3n", "gemma3n_text", "gemma4", "gemma4_text", "gemma4_unified",
    "gemma4_unified_assistant", "gemma4_unified_text", "got_ocr2", "gpt-sw3", "gpt2", "gpt_bigcode", "gpt_neo",
    "gpt_neox_japanese", "granite_swa", "jetmoe", "lara_mini", "lfm2", "lfm2_moe", "lfm3", "mamba", "marian",
    "mbart", "megatron-bert", "minicpm3", "modernbert-decoder", "moss_transcribe_diarize", "mpt", "mvp",
    "openai-gpt", "opt", "param2moe", "pegasus", "plbart", "prophetnet", "recurrent_gemma", "roberta",
    "roberta-prelayernorm", "roc_bert", "roformer", "smollm3", "starcoder2", "trocr", "vaultgemma", "whisper",
    "xglm", "xlm", "xlm-roberta", "xlm-roberta-xl", "xlnet", "xmod", "youtu", "zamba", "zamba2", "zaya",
})  # fmt: skip


class TemplateRefused(ValueError):
    """The chat template refused the conversation (its `raise_exception`, e.g. "System role not
    supported"), or is no valid template."""


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


# Where a model's files are -------------------------------------------------------------------------------


def hub_folder(model_id: str, revision: str | None = None) -> Path:
    """The local snapshot folder of a Hugging Face id, with LIGHT_FILES in it: the cache (HF_HOME) when
    it holds REQUIRED_FILES, else downloaded from the Hub (as transformers' AutoTokenizer and AutoConfig
    did in the web process before: a few hundred KB, never the weights) unless HF_HUB_OFFLINE.
    ModelError with the message models.load_tokenizer gives."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    def snapshot(local: bool) -> Path:
        return Path(
            snapshot_download(model_id, revision=revision, allow_patterns=LIGHT_FILES, local_files_only=local,
                              token=os.environ.get("HF_TOKEN"))
        )  # fmt: skip

    try:
        try:
            folder = snapshot(local=True)
        except LocalEntryNotFoundError:
            if constants.HF_HUB_OFFLINE:
                raise
            folder = snapshot(local=False)
        else:  # a snapshot that holds some files only (a config fetched alone): the rest from the Hub
            if not constants.HF_HUB_OFFLINE and not all((folder / f).is_file() for f in REQUIRED_FILES):
                folder = snapshot(local=False)
    except LocalEntryNotFoundError as exc:
        raise ModelError(
            f"The model “{model_id}” is not on this machine and the Hugging Face Hub cannot be reached. "
            "Download it on a machine with internet access into HF_HOME, or give a local folder."
        ) from exc
    except (HFValidationError, RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as exc:
        raise ModelError(
            f"There is no model “{model_id}” on the Hugging Face Hub (or it is private: set HF_TOKEN)."
        ) from exc
    except Exception as exc:  # the Hub's other failures, said with the model's name
        raise ModelError(hub_message(model_id, exc)) from exc
    if not (folder / "config.json").is_file():
        raise ModelError(f"The model “{model_id}” has no config.json: it is not a transformers model.")
    return folder


def model_folders(ref: ModelRef) -> tuple[Path, Path]:
    """(the folder the tokenizer is read from, the folder the config is read from), as
    models.load_tokenizer and load_model choose them: an adapter's own tokenizer where it saved one,
    else its base's; a hub id's snapshot."""
    where = resolve(ref)
    base = Path(where["base"]) if where["local"] else hub_folder(where["base"], ref.revision)
    adapter = where["adapter"]
    if adapter and Path(adapter, "tokenizer_config.json").is_file():
        return Path(adapter), base
    return base, base


# The config ---------------------------------------------------------------------------------------------


def model_config(folder: Path | str) -> dict[str, Any]:
    """config.json as a dict, {} when it is missing or unreadable."""
    return _json(Path(folder) / "config.json")


def config_namespace(config: dict[str, Any]) -> types.SimpleNamespace:
    """The config with the attributes workers.training.estimate.Shape and the plan read, as transformers'
    config object has them: its aliases resolved (GPT-2's n_embd is hidden_size), a multimodal config's
    language model (text_config) where the top level has no hidden size, and tie_word_embeddings
    defaulted as the model type's config class defaults it."""
    values = dict(config)
    text = values.get("text_config")
    if not any(k in values for k in ("hidden_size", *CONFIG_ALIASES["hidden_size"])) and isinstance(
        text, dict
    ):
        values = {**text, **{k: v for k, v in values.items() if k != "text_config" and k not in text}}
    for name, aliases in CONFIG_ALIASES.items():
        if name not in values:
            found = next((values[a] for a in aliases if a in values), None)
            if found is not None:
                values[name] = found
    if values.get("tie_word_embeddings") is None:
        values["tie_word_embeddings"] = values.get("model_type") in TIED_BY_DEFAULT
    return types.SimpleNamespace(**values)


def read_config(ref: ModelRef) -> types.SimpleNamespace:
    """The model's config, for the estimate (config_namespace); ModelError naming the model."""
    _, folder = model_folders(ref)
    config = model_config(folder)
    if not config:
        raise ModelError(
            f"The configuration of “{ref.name_or_path}” could not be read: {folder}/config.json."
        )
    return config_namespace(config)


# The chat template ----------------------------------------------------------------------------------------


def chat_template(folder: Path | str) -> str | None:
    """The folder's default chat template, where transformers' AutoTokenizer finds it: chat_template.jinja
    (where transformers 5 saves it), else additional_chat_templates/default.jinja when that folder exists
    (its templates then replace the config's), else tokenizer_config.json's "chat_template" (a string, or a
    list of named templates: the one named "default")."""
    folder = Path(folder)
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    extra = folder / "additional_chat_templates"
    if extra.is_dir() and any(extra.glob("*.jinja")):
        default = extra / "default.jinja"
        return default.read_text() if default.is_file() else None
    found = _json(folder / "tokenizer_config.json").get("chat_template")
    if isinstance(found, str):
        return found
    if isinstance(found, list):
        named = {t.get("name"): t.get("template") for t in found if isinstance(t, dict)}
        template = named.get("default")
        return template if isinstance(template, str) else None
    return None


def special_tokens(folder: Path | str) -> dict[str, str]:
    """The special tokens a chat template sees (transformers' tokenizer.special_tokens_map): the named ones
    of tokenizer_config.json (and, in a config without added_tokens_decoder, the legacy
    special_tokens_map.json), the model-specific ones of its "extra_special_tokens" mapping, and the pad
    token as the end-of-sequence token where there is none (as models.load_tokenizer and the built-in
    engine set it)."""
    folder = Path(folder)
    config = _json(folder / "tokenizer_config.json")
    values: dict[str, Any] = {k: v for k, v in config.items() if k in SPECIAL_TOKENS}
    if "added_tokens_decoder" not in config:
        for key, value in _json(folder / "special_tokens_map.json").items():
            if key in SPECIAL_TOKENS:
                values[key] = value
    extra = config.get("extra_special_tokens")
    if isinstance(extra, dict):
        values.update(extra)
    found = {}
    for name, value in values.items():
        if isinstance(value, dict):  # {"content": "<s>", ...} in older configs
            value = value.get("content")
        if isinstance(value, str):
            found[name] = value
    if "pad_token" not in found and "eos_token" in found:
        found["pad_token"] = found["eos_token"]
    return found


def _clean_chat(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as transformers hands them to a template: keys whose value is None dropped, a message's
    reasoning under the names templates read it by."""
    chat = []
    for message in messages:
        if not isinstance(message, dict):
            raise TypeError(f"Chat messages should be dicts, but got {message!r}.")
        message = {k: v for k, v in message.items() if v is not None}
        reasoning = next(
            (
                message[k]
                for k in ("reasoning_content", "thinking", "reasoning")
                if message.get(k) is not None
            ),
            None,
        )
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        chat.append(message)
    return chat


def render_chat(
    template: str, messages: list[dict[str, Any]], tokens: dict[str, str], add_generation_prompt: bool = False
) -> str:
    """The conversation through the template, as transformers' apply_chat_template(tokenize=False)
    renders it: keys whose value is None dropped, a message's reasoning under the names templates read
    it by, the special tokens as variables. TemplateRefused when the template refuses it."""
    import jinja2

    chat = _clean_chat(messages)
    try:
        return str(
            _compiled(template).render(
                messages=chat,
                tools=None,
                documents=None,
                add_generation_prompt=add_generation_prompt,
                **tokens,
            )
        )
    except jinja2.TemplateError as exc:
        raise TemplateRefused(str(exc)) from exc


_TRACKED = threading.local()  # (rendered blocks, generation spans) of the render being tracked, per thread


def assistant_spans(
    template: str, messages: list[dict[str, Any]], tokens: dict[str, str]
) -> tuple[str, list[tuple[int, int]]]:
    """The conversation rendered (as render_chat) and where its {% generation %} blocks (the assistant's
    turns, in templates that mark them for training) lie in the text, as character spans."""
    import jinja2

    blocks: list[str] = []
    spans: list[tuple[int, int]] = []
    _TRACKED.state = (blocks, spans)
    try:
        for block in _compiled(template).generate(messages=_clean_chat(messages), tools=None, documents=None,
                                                  add_generation_prompt=False, **tokens):  # fmt: skip
            blocks.append(block)
    except jinja2.TemplateError as exc:
        raise TemplateRefused(str(exc)) from exc
    finally:
        _TRACKED.state = None
    return "".join(blocks), spans


@lru_cache(maxsize=16)
def _compiled(template: str) -> Any:
    """The template compiled as transformers compiles it (utils/chat_template_utils.py): a sandbox,
    trimmed blocks, loop controls, its `tojson`, `raise_exception`, `strftime_now`, `dict` and
    `namespace`, and its `{% generation %}` tags (which only mark the assistant's tokens for training
    masks, so here they render their body and nothing else)."""
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    import jinja2.utils
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTags(jinja2.ext.Extension):
        """Renders a {% generation %} block's body; while render_chat tracks them (`_TRACKED`), records
        where each block's text lies in the output, as transformers' AssistantTracker does for
        return_assistant_tokens_mask."""

        tags = {"generation"}

        def parse(self, parser: Any) -> jinja2.nodes.Node:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            call = self.call_method("_generation", [])
            return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

        def _generation(self, caller: Any) -> str:
            text = str(caller())
            tracked = getattr(_TRACKED, "state", None)
            if tracked is not None:
                blocks, spans = tracked
                start = len("".join(blocks))
                spans.append((start, start + len(text)))
            return text

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: Any = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        # Not jinja's own tojson, which escapes HTML characters.
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    class TemplateDict:  # dict() without attribute access to the class
        def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
            return dict(*args, **kwargs)

        def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):  # no underscore names: no way to CPython internals
        def __init__(*args: Any, **kwargs: Any) -> None:
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check_name(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"Chat templates cannot store underscore-prefixed attributes on a namespace, but got {name!r}."
                )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTags, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    try:
        return env.from_string(template)
    except jinja2.TemplateError as exc:
        raise TemplateRefused(f"The chat template cannot be read: {exc}") from exc


# The tokenizer ----------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _backend(path: str, mtime_ns: int) -> Any:
    """tokenizer.json loaded once per file version (a large model's takes a while to parse), with the
    truncation and padding it may have saved switched off, as transformers' tokenizer switches them off
    for a call without truncation or padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class ChatTokenizer:
    """What the preview and the plan use of a transformers tokenizer, read from the model's folder:
    `chat_template`, `apply_chat_template` and calling it on text without special tokens added (the
    chat template writes its own). workers.training.train's plan takes it in place of the tokenizer
    models.load_tokenizer loads, and gives the same lengths."""

    def __init__(self, folder: Path | str, name: str | None = None) -> None:
        self.folder = Path(folder)
        self.name = name or str(folder)
        self.chat_template = chat_template(self.folder)
        self.special_tokens_map = special_tokens(self.folder)
        file = self.folder / "tokenizer.json"
        if not file.is_file():
            raise ModelError(
                f"The tokenizer of “{self.name}” cannot be read without transformers: it has no tokenizer.json."
            )
        try:
            self._tokenizer = _backend(str(file), file.stat().st_mtime_ns)
        except Exception as exc:  # tokenizers raises its own kinds for a file it cannot read
            raise ModelError(f"The tokenizer of “{self.name}” could not be read: {exc}") from exc

    @classmethod
    def for_model(cls, ref: ModelRef) -> ChatTokenizer:
        folder, _ = model_folders(ref)
        return cls(folder, ref.name_or_path)

    def apply_chat_template(
        self,
        conversation: list[dict[str, Any]],
        *,
        tokenize: bool = False,
        add_generation_prompt: bool = False,
    ) -> Any:
        """The text (tokenize=False) or token ids of one conversation, as transformers' tokenizer gives
        them with return_dict=False. ValueError without a chat template, as transformers raises."""
        if self.chat_template is None:
            raise ValueError(f"The tokenizer of “{self.name}” has no chat template.")
        if not conversation:
            raise ValueError(
                "Cannot apply chat template to an empty conversation. Provide at least one message."
            )
        text = render_chat(self.chat_template, conversation, self.special_tokens_map, add_generation_prompt)
        return self(text, add_special_tokens=False)["input_ids"] if tokenize else text

    def encode(self, text: str) -> Any:
        """The tokenizers Encoding of a text (ids and each token's character offsets)."""
        return self._tokenizer.encode(text, add_special_tokens=False)

    def assistant_mask(self, conversation: list[dict[str, Any]]) -> tuple[str, list[int], list[int]]:
        """(text, ids, mask) of a conversation with 1 on the tokens of the assistant's turns that the
        template marks with {% generation %}, as transformers' return_assistant_tokens_mask gives them;
        all 0 where the template marks none."""
        if self.chat_template is None:
            raise ValueError(f"The tokenizer of “{self.name}” has no chat template.")
        text, spans = assistant_spans(self.chat_template, conversation, self.special_tokens_map)
        encoding = self.encode(text)
        mask = [0] * len(encoding.ids)
        for start, end in spans:
            first, last = (
                encoding.char_to_token(start),
                encoding.char_to_token(end - 1) if end > start else None,
            )
            if first is None:
                continue
            for i in range(first, (last + 1) if last is not None else len(mask)):
                mask[i] = 1
        return text, list(encoding.ids), mask

    def __call__(
        self, text: str | list[str], *, add_special_tokens: bool, verbose: bool = False
    ) -> dict[str, Any]:
        """{"input_ids": ids} of a text, or a list of ids of each of a list of texts."""
        if add_special_tokens:  # transformers may rebuild the post-processor that adds them: not here
            raise ValueError(
                "ChatTokenizer counts text as the chat template writes it: add_special_tokens=False."
            )
        if isinstance(text, str):
            return {"input_ids": self._tokenizer.encode(text, add_special_tokens=False).ids}
        return {
            "input_ids": [e.ids for e in self._tokenizer.encode_batch(list(text), add_special_tokens=False)]
        }
