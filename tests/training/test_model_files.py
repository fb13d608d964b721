"""workers.training.model_files reads a model as transformers reads it, without transformers: the same
text through the chat template, the same token counts, the same shape for the estimate. The web
process's preview and estimate use it (tests/jobs/test_web_imports.py), so its numbers must be the ones
the training process, which loads with transformers, gets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from workers.training import data
from workers.training.estimate import Shape
from workers.training.model_files import (
    TIED_BY_DEFAULT,
    ChatTokenizer,
    TemplateRefused,
    config_namespace,
    model_folders,
    read_config,
)
from workers.training.models import ModelError, load_tokenizer
from workers.training.spec import JobSpec, ModelRef
from workers.training.train import plan_hparams

ROWS: list[dict[str, Any]] = [
    {"prompt": "reverse: c a t", "completion": "t a c"},  # plain text: trained as chat turns (as_chat)
    {"prompt": "reverse: d o g", "chosen": "g o d", "rejected": "d o g"},
    {"messages": [{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "ünïcödé, 日本語 and {\"json\": [1, 2]}\n\twith tabs"},
                  {"role": "assistant", "content": "ok", "tool_calls": None}]},  # None keys are dropped
    {"messages": [{"role": "user", "content": "add: 2 + 3"}, {"role": "assistant", "content": "5"},
                  {"role": "user", "content": "and 4 + 4?"}, {"role": "assistant", "content": "8"}]},
]  # fmt: skip

# A template written as the Hub's are: the special tokens as variables, a namespace, loop controls,
# tojson, raise_exception for what it refuses, and the generation prompt.
HUB_STYLE_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = m['content'] %}{% continue %}{% endif %}"
    "{% if m['role'] not in ['user', 'assistant'] %}{{ raise_exception('Unknown role: ' + m['role']) }}{% endif %}"
    "<|im_start|>{{ m['role'] }}\n"
    "{% if ns.system and loop.index0 == 1 %}{{ ns.system | trim }} {{ {'sys': true} | tojson }}\n{% endif %}"
    "{{ m['content'] | trim }}{% if m['role'] == 'assistant' %}{{ eos_token }}{% else %}<|im_end|>{% endif %}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _hub_style(tiny_model: Path, folder: Path) -> Path:
    """A model folder as many Hub models are: the template in tokenizer_config.json (no
    chat_template.jinja), and a tokenizer.json that saved a truncation and a padding (which a call
    without truncation or padding does not apply)."""
    shutil.copytree(tiny_model / "partial", folder)
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": HUB_STYLE_TEMPLATE}))
    saved = json.loads((folder / "tokenizer.json").read_text())
    saved["truncation"] = {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0}
    saved["padding"] = {"strategy": {"Fixed": 64}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 1,
                        "pad_type_id": 0, "pad_token": "<|pad|>"}  # fmt: skip
    (folder / "tokenizer.json").write_text(json.dumps(saved))
    return folder


def _adapter(folder: Path, base: Path) -> Path:
    """An adapter folder as a job writes one, without its weights (nothing here loads them)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    return folder


@pytest.fixture(params=["base", "partial", "judge", "hub-style", "adapter"])
def model(request, tiny_model, tmp_path) -> Path:
    if request.param == "hub-style":
        return _hub_style(tiny_model, tmp_path / "hub-style")
    if request.param == "adapter":
        return _adapter(tmp_path / "adapter", tiny_model / "partial")
    return tiny_model / request.param


def _chats() -> list[list[dict[str, Any]]]:
    return [row.get("messages") or row["prompt"] for row in data.as_chat(ROWS)] + [
        data.as_chat(ROWS)[0]["prompt"] + data.as_chat(ROWS)[0]["completion"]
    ]


def test_the_chat_template_renders_and_counts_as_transformers_does(model):
    ref = ModelRef(str(model))
    light, heavy = ChatTokenizer.for_model(ref), load_tokenizer(ref)
    assert light.chat_template == heavy.chat_template and light.special_tokens_map == heavy.special_tokens_map
    for messages in _chats():
        for generation_prompt in (False, True):
            text = light.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt
            )
            assert text == heavy.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt
            )
            ids = light(text, add_special_tokens=False)["input_ids"]
            assert ids == heavy(text, add_special_tokens=False)["input_ids"] and len(ids) > 8
            assert (
                light.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
                == ids
            )
    texts = [light.apply_chat_template(m) for m in _chats()]
    assert (
        light(texts, add_special_tokens=False)["input_ids"]
        == heavy(texts, add_special_tokens=False)["input_ids"]
    )


def test_the_plan_counts_the_same_tokens_and_the_shape_is_autoconfigs(model):
    """What the estimate reads: each row's length as the plan counts it, the shape and the context."""
    from transformers import AutoConfig

    ref = ModelRef(str(model))
    spec = JobSpec.from_dict({"technique": "sft", "model": str(model), "dataset": "-", "output_dir": "-"})
    config = AutoConfig.from_pretrained(model_folders(ref)[1])
    light = read_config(ref)
    assert Shape.from_config(light) == Shape.from_config(config)
    assert light.max_position_embeddings == config.max_position_embeddings
    light_tokenizer, heavy_tokenizer = ChatTokenizer.for_model(ref), load_tokenizer(ref)
    rows = data.for_model(ROWS, light_tokenizer)
    assert rows == data.for_model(ROWS, heavy_tokenizer) == data.as_chat(ROWS)
    n = Shape.from_config(config).parameters
    planned = plan_hparams(spec, light_tokenizer, rows, n, light, False)
    assert planned == plan_hparams(spec, heavy_tokenizer, rows, n, config, False)
    assert all(length > 8 for length in planned[1])


def test_a_model_without_a_chat_template_plans_on_plain_text_as_transformers_does(tiny_model, tmp_path):
    folder = tmp_path / "plain"
    shutil.copytree(tiny_model / "base", folder)
    (folder / "chat_template.jinja").unlink()
    ref = ModelRef(str(folder))
    light, heavy = ChatTokenizer.for_model(ref), load_tokenizer(ref)
    assert light.chat_template is heavy.chat_template is None
    plain = ROWS[:2]  # a chat row cannot be trained without a template
    assert data.for_model(plain, light) == data.for_model(plain, heavy) == plain  # trained as plain text
    spec = JobSpec.from_dict({"technique": "sft", "model": str(folder), "dataset": "-", "output_dir": "-"})
    config = read_config(ref)
    n = Shape.from_config(config).parameters
    planned = plan_hparams(spec, light, plain, n, config, False)
    assert planned == plan_hparams(spec, heavy, plain, n, config, False) and planned[1][0] > 4
    for tokenizer in (light, heavy):
        with pytest.raises(ValueError, match="chat template"):
            tokenizer.apply_chat_template(ROWS[2]["messages"], tokenize=False)


def test_an_adapter_reads_its_own_tokenizer_where_it_saved_one(tiny_model, tmp_path):
    adapter = _adapter(tmp_path / "adapter", tiny_model / "partial")
    assert model_folders(ModelRef(str(adapter))) == (tiny_model / "partial", tiny_model / "partial")
    _hub_style(tiny_model, tmp_path / "tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tmp_path / "tokenizer" / name, adapter / name)
    ref = ModelRef(str(adapter))
    assert model_folders(ref) == (adapter, tiny_model / "partial")
    messages = data.as_chat(ROWS)[0]["prompt"]
    assert ChatTokenizer.for_model(ref).apply_chat_template(messages) == load_tokenizer(
        ref
    ).apply_chat_template(messages, tokenize=False)


@pytest.fixture
def hub_cache(monkeypatch, tmp_path):
    """An empty Hugging Face cache, offline (no hub is reachable here; offline makes that immediate)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return tmp_path / "hf" / "hub"


def test_a_hub_id_reads_its_downloaded_snapshot(tiny_model, hub_cache):
    """The cache as huggingface_hub lays it out: refs/main names the snapshot folder."""
    repo = hub_cache / "models--acme--tiny"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_model / "partial", repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    ref = ModelRef("acme/tiny")
    assert model_folders(ref)[1] == repo / "snapshots" / commit
    assert Shape.from_config(read_config(ref)) == Shape.from_config(
        read_config(ModelRef(str(tiny_model / "partial")))
    )
    messages = data.as_chat(ROWS)[0]["prompt"]
    assert ChatTokenizer.for_model(ref).apply_chat_template(messages) == load_tokenizer(
        ref
    ).apply_chat_template(messages, tokenize=False)


def test_a_hub_id_that_is_not_here_gets_the_message_naming_it(hub_cache):
    with pytest.raises(
        ModelError, match="“acme/not-a-model-xyz” is not on this machine and the Hugging Face Hub"
    ):
        ChatTokenizer.for_model(ModelRef("acme/not-a-model-xyz"))
    with pytest.raises(ModelError, match="No model folder at /nowhere/model"):
        read_config(ModelRef("/nowhere/model"))


def test_a_folder_without_tokenizer_json_or_a_template_that_refuses_says_so(tiny_model, tmp_path):
    folder = _hub_style(tiny_model, tmp_path / "model")
    with pytest.raises(TemplateRefused, match="Unknown role: tool"):
        ChatTokenizer(folder).apply_chat_template([{"role": "tool", "content": "x"}])
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"has no tokenizer\.json"):
        ChatTokenizer.for_model(ModelRef(str(folder)))


# Causal language models whose config class reads the estimate's values under names of its own (an
# attribute_map entry of that class only, or a property): the light reading differs for these, and only
# these, of transformers' causal language models whose shape AutoConfig gives.
OWN_NAMES = {
    "bailing_hybrid", "deepseek_v4", "dory", "inkling2_loop_text", "inkling2_text", "kimi_linear",
    "longcat_flash", "nemotron_h", "prophetnet", "xlnet",
}  # fmt: skip


def test_every_causal_language_models_shape_is_read_as_autoconfig_reads_it():
    """For every causal language model type transformers knows, its config.json (to_dict, as
    save_pretrained writes it, with and without tie_word_embeddings, which configs leave out when it is
    their class's default) gives the shape and the context AutoConfig gives."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    differ, tied = set(), set()
    for model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        try:
            config = AutoConfig.for_model(model_type)
        except Exception:  # noqa: BLE001, S112 - a class that cannot be made without arguments
            continue
        if getattr(config, "tie_word_embeddings", False):
            tied.add(model_type)
        try:
            expected = (
                Shape.from_config(config),
                int(getattr(config, "max_position_embeddings", 2048) or 2048),
            )
        except Exception:  # noqa: BLE001, S112 - a model whose shape AutoConfig does not give either
            continue
        for leave_out in ((), ("tie_word_embeddings",)):
            saved = {k: v for k, v in config.to_dict().items() if k not in leave_out}
            try:
                light = config_namespace(saved)
                got = (Shape.from_config(light), int(getattr(light, "max_position_embeddings", 2048) or 2048))
            except AttributeError:
                got = None
            if got != expected:
                differ.add(model_type)
    assert differ == OWN_NAMES
    assert tied == TIED_BY_DEFAULT
