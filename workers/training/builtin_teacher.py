"""The built-in teacher (`atelier-tiny/teacher`): the partly trained tiny model, fully fine-tuned to answer
the two requests of Generate data (workers.training.synthetic.pipeline: the topic request and the example
request, for each technique's format, with or without seed examples) for the reverse demo task.

Asked for topics, it proposes a tree by word length (``{"topics": [{"name": "short words", "subtopics":
["3 letters", "4 letters"]}, ...]}``); asked for examples of a topic, it writes that many rows as JSON in
the technique's fields, words of the topic's length (any length from 3 to 6 for a topic it does not know)
with their reversal, e.g. ``{"examples": [{"prompt": "reverse: h o u s e", "completion": "e s u o h"}]}``.
It invents its words by sampling, as a bigger teacher would.

Trained from words of the SFT demo file; measured on requests with descriptions it never saw, seeded
from the eval file's words: the share of asked-for rows that the pipeline's checks keep (valid JSON, the
technique's fields, not a near-duplicate) and the share of kept rows whose reversal is right. Seeded and
deterministic.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workers.training import builtin_judge, tiny

DESCRIPTIONS = (
    "Reverse the letters of a word.",
    "Spell the given word backwards, letter by letter.",
    "The user gives a word with spaces between its letters; the assistant answers with the letters in reverse order.",
    "reverse words",
    "Teach the model to reverse short words.",
    "Requests to reverse a word, and the reversed word as the answer.",
    "A dataset for reversing the letters of words, one word per row.",
    "Write each word backwards.",
    "Letter reversal: the answer is the request's letters from last to first.",
    "The model reverses spaced-out letters.",
)
# Never trained on: what the measurement asks with.
HELD_OUT_DESCRIPTIONS = (
    "Reverse the order of the letters the user gives.",
    "Examples of turning a word around, last letter first.",
)
TREE = [
    {"name": "short words", "subtopics": ["3 letters", "4 letters"]},
    {"name": "longer words", "subtopics": ["5 letters", "6 letters"]},
]
OTHER_TOPICS = ("animals", "made-up words", "common words", "names", "everyday objects", "short words")
LENGTH = re.compile(r"(\d+) letters")
LENGTHS = (3, 4, 5, 6)


@dataclass(frozen=True)
class TeacherRecipe:
    steps: int = 1200
    batch: int = 8
    lr: float = 1e-3
    warmup: int = 50
    seed: int = 0
    examples: int = 8000  # (request, reply) pairs made for training


def row(technique: str, word: str) -> dict[str, str]:
    """One example in the technique's fields (workers.training.synthetic.schema.FIELDS: the prompt, then
    the answer where the technique has one)."""
    from workers.training.synthetic.schema import FIELDS

    return dict(
        zip(FIELDS[technique], ("reverse: " + " ".join(word), " ".join(reversed(word))), strict=False)
    )


def tree_reply(max_topics: int) -> str:
    tree = (
        TREE
        if max_topics >= len(TREE)
        else [{"name": "words", "subtopics": [f"{n} letters" for n in LENGTHS]}]
    )
    return json.dumps({"topics": tree}, ensure_ascii=False)


def examples_reply(technique: str, words: list[str]) -> str:
    return json.dumps({"examples": [row(technique, w) for w in words]}, ensure_ascii=False)


def topic_length(topic: str) -> int | None:
    match = LENGTH.search(topic)
    return int(match.group(1)) if match and int(match.group(1)) in LENGTHS else None


def _spec(technique: str, description: str, seeds: list[dict[str, str]], max_topics: int = 8) -> Any:
    from workers.training.synthetic.pipeline import SynthSpec

    return SynthSpec(technique=technique, description=description, output_dir="", teacher={}, seeds=seeds,
                     max_topics=max_topics)  # fmt: skip


def requests(words: list[str], descriptions: tuple[str, ...], n: int, seed: int,
             topic_share: float = 0.1) -> list[tuple[list[dict[str, str]], str]]:  # fmt: skip
    """(request, reply) pairs exactly as the pipeline asks them (its own request functions), over the
    four techniques, with 0-3 seed examples, a tenth of them topic requests."""
    from workers.training.synthetic import schema
    from workers.training.synthetic.pipeline import example_request, topic_request

    rng = random.Random(seed)
    by_length = {size: [w for w in words if len(w) == size] for size in LENGTHS}
    known = [f"{t['name']} / {s}" for t in TREE for s in t["subtopics"]] + [
        f"words / {size} letters" for size in LENGTHS
    ]
    out = []
    for _ in range(n):
        technique = rng.choice(schema.SHAPES)
        seeds = [row(technique, rng.choice(words)) for _ in range(rng.choice((0, 0, 1, 2, 3)))]
        spec = _spec(technique, rng.choice(descriptions), seeds, max_topics=rng.choice((1, 3, 5, 8, 8, 8)))
        if rng.random() < topic_share:
            out.append((topic_request(spec, []), tree_reply(spec.max_topics)))
            continue
        topic = rng.choice(known) if rng.random() < 0.8 else rng.choice(OTHER_TOPICS)
        length = topic_length(topic)
        count = rng.choice((1, 2, 3, 4, 4, 4))
        chosen = [rng.choice(by_length[length or rng.choice(LENGTHS)]) for _ in range(count)]
        out.append((example_request(spec, topic, None, count), examples_reply(technique, chosen)))
    return out


def correct(technique: str, example: dict[str, str], length: int | None = None) -> bool:
    """A kept row is right when its prompt is a reverse request for letters (of the topic's length, when
    the topic has one) and its answer, where the technique has one, is their reversal."""
    word = builtin_judge.word_of(example["prompt"])
    if not word or (length is not None and len(word) != length):
        return False
    from workers.training.synthetic.schema import FIELDS

    return all(example[answer] == " ".join(reversed(word)) for answer in FIELDS[technique][1:])


def measure(model: Any, tokenizer: Any, seed: int = 1, per_technique: int = 48) -> dict[str, Any]:
    """The teacher's replies to held-out example and topic requests, sampled at the pipeline's default
    temperature, checked with the pipeline's own checks: rows kept of those asked for, kept rows correct,
    topic trees parsed."""
    import torch

    from workers.training.generation import generate
    from workers.training.synthetic import schema
    from workers.training.synthetic.dedupe import NearDuplicates
    from workers.training.synthetic.pipeline import SynthSpec, example_request, topic_request

    torch.manual_seed(seed)
    rng = random.Random(seed)
    held = builtin_judge.held_out_words()
    leaves = schema.leaves(TREE)
    result: dict[str, Any] = {}
    for technique in schema.SHAPES:
        seeds = [row(technique, w) for w in rng.sample(held, 3)]
        asked = kept = right = 0
        seen = NearDuplicates()
        prompts, lengths = [], []
        for i in range(per_technique):
            spec = _spec(technique, HELD_OUT_DESCRIPTIONS[i % 2], seeds[: i % 4])
            topic = leaves[i % len(leaves)]
            prompts.append(example_request(spec, topic, None, 4))
            lengths.append(topic_length(topic))
        replies = generate(model, tokenizer, prompts, SynthSpec.max_tokens, 32, SynthSpec.temperature)
        for reply, length in zip(replies, lengths, strict=True):
            asked += 4
            good, _ = schema.examples_in(reply, technique)
            for example in good[:4]:
                if seen.seen_before(" ".join(example.values())):
                    continue
                kept += 1
                right += correct(technique, example, length)
        result[technique] = {"asked": asked, "kept": kept, "correct": right}
    trees = generate(model, tokenizer, [topic_request(_spec("sft", d, []), []) for d in HELD_OUT_DESCRIPTIONS] * 4,
                     SynthSpec.max_tokens, 32, SynthSpec.temperature)  # fmt: skip
    parsed = 0
    for reply in trees:
        with contextlib.suppress(ValueError):
            parsed += bool(schema.topics_in(reply))
    asked = sum(r["asked"] for r in result.values())
    kept = sum(r["kept"] for r in result.values())
    right = sum(r["correct"] for r in result.values())
    return {"by_technique": result, "kept": round(kept / asked, 4), "correct": round(right / max(1, kept), 4),
            "topic_trees_parsed": round(parsed / len(trees), 4)}  # fmt: skip


def build(partial: Path, recipe: TeacherRecipe | None = None, log: Any = None) -> tuple[Any, Any]:
    """The teacher, trained from `partial` (in memory)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = recipe or TeacherRecipe()
    tiny._seed(recipe.seed)
    tokenizer = AutoTokenizer.from_pretrained(partial)
    model = AutoModelForCausalLM.from_pretrained(partial)
    rows = requests(builtin_judge.training_words(), DESCRIPTIONS, recipe.examples, recipe.seed)
    tiny.fine_tune(model, tokenizer, rows, recipe, log)
    return model, tokenizer


def build_and_save(
    partial: Path, out: Path, recipe: TeacherRecipe | None = None, log: Any = None
) -> dict[str, Any]:
    """Train the teacher, measure it on held-out requests, save it to `out` with the numbers in
    atelier.json; the meta."""
    import shutil
    import time

    recipe = recipe or TeacherRecipe()
    started = time.monotonic()
    model, tokenizer = build(partial, recipe, log)
    seconds = round(time.monotonic() - started, 1)
    measured = measure(model, tokenizer)
    meta = {"variant": "teacher", "build_version": tiny.BUILD_VERSION, "recipe": asdict(recipe),
            "train_seconds": seconds, **measured}  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    tiny.save(model, tokenizer, out, meta)
    return meta
