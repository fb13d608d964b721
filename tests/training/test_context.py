"""workers.training.context counts a chat request as the model's server does (transformers'
apply_chat_template, the built-in engine), without importing torch or transformers: the web app's forms
refuse a judge or teacher too small for its requests by these numbers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workers.training.context import TokensUnknown, count_tokens, model_context
from workers.training.synthetic.documents import Chunk
from workers.training.synthetic.pipeline import SynthSpec, example_request, topic_request

CHATS = [
    [{"role": "user", "content": "reverse: c a t"}],
    [{"role": "system", "content": "You are a strict grader."}, {"role": "user", "content": "Rubric: x\n\nScore (0-10):"}],
    # An assistant turn goes through the template's {% generation %} block (transformers' extension).
    [{"role": "user", "content": "add: 2 + 3"}, {"role": "assistant", "content": "5"},
     {"role": "user", "content": "ünïcödé, 日本語 and {\"json\": [1, 2]}\n\twith tabs"}],
]  # fmt: skip


def _pipeline_request() -> list[dict[str, str]]:
    """The teacher's example request the contract measured: a description, five seeds, a 1,200-character
    passage."""
    seeds = [{"prompt": f"reverse: {' '.join(w)}", "completion": " ".join(reversed(w))}
             for w in ("cat", "house", "garden", "window", "river")]  # fmt: skip
    spec = SynthSpec(technique="sft", output_dir="-", teacher={"local": "x"}, seeds=seeds,
                     description="Reverse the letters of a word: the user gives letters separated by spaces and "
                                 "the answer is the same letters in the opposite order.")  # fmt: skip
    passage = (
        "A word is a sequence of letters. Reversing it reads the letters from the last to the first. " * 14
    )[:1200]
    return example_request(spec, "short words / three letters", Chunk("words.txt", 0, passage), 4)


def _transformers_count(folder: Path, messages: list[dict[str, str]]) -> int:
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(folder).apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, return_dict=False
    )
    return len(ids)


@pytest.mark.parametrize("variant", ["base", "partial"])
def test_the_count_is_transformers_own_for_every_kind_of_chat(tiny_model, variant):
    folder = tiny_model / variant
    for messages in [*CHATS, _pipeline_request()]:
        assert count_tokens(folder, messages) == _transformers_count(folder, messages)


def test_the_teachers_largest_request_is_the_size_the_context_was_chosen_for(tiny_model):
    """The contract's measurement (1,280 tokens + 512 to answer, hence a context of 2,048)."""
    counted = count_tokens(tiny_model / "partial", _pipeline_request())
    assert 1000 < counted < 1536 and model_context(tiny_model / "partial") == 2048 and counted + 512 <= 2048
    print(f"example request: {counted} tokens")
    spec = SynthSpec(technique="sft", output_dir="-", teacher={"local": "x"}, description="Reverse words.")
    assert count_tokens(tiny_model / "partial", topic_request(spec, [])) == _transformers_count(
        tiny_model / "partial", topic_request(spec, [])
    )


def test_a_template_kept_in_tokenizer_config_counts_the_same(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model / "partial", folder)
    template = (folder / "chat_template.jinja").read_text()
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": template}))
    messages = _pipeline_request()
    assert count_tokens(folder, messages) == count_tokens(tiny_model / "partial", messages)
    named = [{"name": "tool_use", "template": "x"}, {"name": "default", "template": template}]
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": named}))
    assert count_tokens(folder, messages) == count_tokens(tiny_model / "partial", messages)


def test_the_context_comes_from_the_config_and_is_unknown_without_one(tiny_model, tmp_path):
    assert model_context(tiny_model / "base") == 2048
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {"max_position_embeddings": 32768}}))
    assert model_context(tmp_path) == 32768
    assert model_context(tmp_path / "nothing") is None
    with pytest.raises(TokensUnknown):
        count_tokens(tmp_path, CHATS[0])


def test_a_template_that_refuses_the_request_is_unknown_not_an_error(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model / "partial", folder)
    (folder / "chat_template.jinja").write_text(
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    assert count_tokens(folder, CHATS[0]) > 0
    with pytest.raises(TokensUnknown, match="System role not supported"):
        count_tokens(folder, CHATS[1])


def test_counting_imports_neither_torch_nor_transformers(tiny_model):
    """The web process imports this module; a form that counts must not pull in torch (seconds)."""
    code = (
        "import sys; from workers.training.context import count_tokens; "
        f"n = count_tokens({str(tiny_model / 'partial')!r}, [{{'role': 'user', 'content': 'hi'}}]); "
        "print(n, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    count, torch, transformers = out.stdout.split()
    assert int(count) > 0 and torch == transformers == "False"
