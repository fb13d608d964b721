"""The built-in judge and teacher folders for the app's tests, and small models that read less.

The app's tests here need only that `atelier-tiny/judge` and `atelier-tiny/teacher` exist as model
folders (same architecture and tokenizer as the others); none of them depends on what those models
answer. Both are shipped and installed by tiny.build (workers.training.builtin_judge and
builtin_teacher); what they answer is tested in tests/training/test_builtin_judge.py and
test_builtin_teacher.py, and end to end in tests/training/test_automatic.py (RLAIF) and
tests/synthetic/test_teacher_end_to_end.py (Generate data).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path


def helpers(tiny_model: Path) -> dict[str, Path]:
    """{"judge": folder, "teacher": folder} in the built-in models' folder, as tiny.build installed them."""
    found = {variant: tiny_model / variant for variant in ("judge", "teacher")}
    for variant, folder in found.items():
        meta = json.loads((folder / "atelier.json").read_text())
        assert meta["variant"] == variant, meta
    return found


def reads_at_most(tiny_model: Path, folder: Path, context: int) -> Path:
    """A copy of the partly trained tiny model whose config says it reads at most `context` tokens: a
    judge or teacher too small for Atelier's requests (the tiny models read 256 before issue 17)."""
    shutil.copytree(tiny_model / "partial", folder, dirs_exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": context}, indent=2))
    return folder


def transformers_counter(folder: Path) -> Callable[[list[dict[str, str]]], int]:
    """Tokens of a chat request as transformers itself counts them (apply_chat_template with the
    generation prompt), to check the app's own count (workers.training.context) against."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)

    def count(messages: list[dict[str, str]]) -> int:
        return len(
            tokenizer.apply_chat_template(
                messages, tokenize=True, add_generation_prompt=True, return_dict=False
            )
        )

    return count
