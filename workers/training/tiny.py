"""The built-in tiny model, built from scratch (no model hub is needed): a byte-level BPE tokenizer
trained on the shipped corpus (every spaced letter and digit one token), a chat template, a Llama-style
network of about 1.1 million parameters, a short pre-training pass on the corpus, and a partly trained variant that is right on 30-50% of the
reverse demo task (reinforcement learning needs a base that sometimes succeeds).

Seeded and deterministic: two builds give the same files. `python -m workers.training build-tiny`.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).parent / "assets"
DEMO = ASSETS / "demo"
# The built-in judge's and teacher's trained weights, shipped (workers.training.builtin_judge and
# builtin_teacher train them from `partial` in about 40 and 15 minutes on 2 cores, far too long for a
# first start): copied beside the others.
SHIPPED = {"judge": ASSETS / "judge", "teacher": ASSETS / "teacher"}
# Bump when anything below changes what is built: a folder of another version is rebuilt.
BUILD_VERSION = 4
ALPHABET_WEIGHT = 2000

SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
# `generation` marks what the assistant says, so trainers can put the loss on it alone.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
PARTIAL_RANGE = (0.30, 0.50)


@dataclass(frozen=True)
class TinyRecipe:
    vocab_size: int = 384
    hidden_size: int = 128
    intermediate_size: int = 512
    layers: int = 4
    heads: int = 4
    context: int = 2048
    pretrain_steps: int = 300
    pretrain_batch: int = 8
    pretrain_window: int = 128
    pretrain_lr: float = 1e-3
    partial_lr: float = 1e-3
    partial_batch: int = 32
    partial_schedule_steps: int = 600  # the cosine schedule's length; the run stops far earlier
    partial_max_steps: int = 400
    seed: int = 0


def corpus_lines() -> list[str]:
    """The shipped corpus, with every fourth paragraph followed by its first words spelled out letter by
    letter, so that pre-training sees spaced letters (a spelling exercise, not the reverse task): without
    them the embeddings of rare tokens such as " q" were left nearly alike and adapters could not tell
    the letters apart."""
    lines = []
    for number, line in enumerate((ASSETS / "corpus.txt").read_text().splitlines()):
        lines.append(line)
        words = re.findall(r"[a-z]+", line)
        if number % 4 == 0 and words:
            lines.append(" ".join(" ".join(word) for word in words[:8]))
    return lines


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def build_tokenizer(recipe: TinyRecipe) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=recipe.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Every letter and digit after a space must be one token, as the demo tasks spell words letter by
    # letter: from the corpus alone BPE left " j", " q", " z" and others as two tokens, so the same task
    # had rows of different shapes. The alphabet lines weigh those merges; they are not pre-trained on.
    alphabet = " ".join("abcdefghijklmnopqrstuvwxyz0123456789")
    tok.train_from_iterator([*corpus_lines(), *[alphabet] * ALPHABET_WEIGHT], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
        model_max_length=recipe.context,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(recipe: TinyRecipe, tokenizer: Any) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.heads,
        max_position_embeddings=recipe.context,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def _pretrain(model: Any, tokenizer: Any, recipe: TinyRecipe) -> float:
    import torch

    ids = torch.tensor(tokenizer("\n".join(corpus_lines()), verbose=False)["input_ids"])
    generator = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.pretrain_lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, recipe.pretrain_lr, total_steps=recipe.pretrain_steps
    )
    model.train()
    loss = 0.0
    for _ in range(recipe.pretrain_steps):
        starts = torch.randint(
            0, len(ids) - recipe.pretrain_window - 1, (recipe.pretrain_batch,), generator=generator
        )
        batch = torch.stack([ids[s : s + recipe.pretrain_window] for s in starts])
        loss = train_step(model, optimizer, schedule, batch, None, batch)
    return loss


def encode_completion(
    tokenizer: Any, messages: list[dict[str, str]], answer: str
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of the chat prompt `messages` and the assistant's `answer`, the loss on the
    answer (and its end token) only."""
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
    return p + a, [-100] * len(p) + a


def pad_batch(tokenizer: Any, chunk: list[tuple[list[int], list[int]]]) -> tuple[Any, Any, Any]:
    """Right-padded tensors (input_ids, labels, attention mask) of encoded examples."""
    import torch

    width = max(len(ids) for ids, _ in chunk)
    input_ids = [ids + [tokenizer.pad_token_id] * (width - len(ids)) for ids, _ in chunk]
    labels = [lab + [-100] * (width - len(lab)) for _, lab in chunk]
    mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk]
    return torch.tensor(input_ids), torch.tensor(labels), torch.tensor(mask)


def _completion_batches(
    tokenizer: Any, rows: list[dict[str, Any]], batch: int, seed: int
) -> Iterator[tuple[Any, Any, Any]]:
    """Endless shuffled batches of (input_ids, labels, mask) with the loss on the assistant's answer only."""
    examples = [
        encode_completion(tokenizer, row["messages"][:1], row["messages"][1]["content"]) for row in rows
    ]
    rng = random.Random(seed)
    while True:
        rng.shuffle(examples)
        for start in range(0, len(examples) - batch + 1, batch):
            yield pad_batch(tokenizer, examples[start : start + batch])


def train_step(model: Any, optimizer: Any, schedule: Any, input_ids: Any, mask: Any, labels: Any) -> float:
    """One optimizer step on a batch with the loss on `labels` (clipped at norm 1); the loss."""
    import torch

    loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad()
    return float(loss.detach())


def fine_tune(model: Any, tokenizer: Any, rows: list[tuple[list[dict[str, str]], str]], recipe: Any,
              log: Any = None) -> None:  # fmt: skip
    """Full fine-tuning on (chat request, reply) pairs with the loss on the reply: AdamW, a linear warmup
    then a cosine schedule, shuffled passes over the examples. `recipe` has steps, batch, lr, warmup and
    seed (the built-in judge's and teacher's recipes); `log(step, loss)` every 100 steps."""
    import torch

    encoded = [encode_completion(tokenizer, m, r) for m, r in rows]
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.0)
    total = recipe.steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / recipe.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)),
    )
    rng = random.Random(recipe.seed)
    order: list[int] = []
    model.train()
    for step in range(1, total + 1):
        if len(order) < recipe.batch:
            order += rng.sample(range(len(encoded)), len(encoded))
        chunk = [encoded[i] for i in order[: recipe.batch]]
        del order[: recipe.batch]
        input_ids, labels, mask = pad_batch(tokenizer, chunk)
        loss = train_step(model, optimizer, schedule, input_ids, mask, labels)
        if log and (step % 100 == 0 or step == total):
            log(step, loss)


def _partly_train(model: Any, tokenizer: Any, recipe: TinyRecipe) -> tuple[int, float]:
    """Full fine-tuning on the reverse task until held-out exact match first lands in PARTIAL_RANGE."""
    import torch

    rows = read_jsonl(DEMO / "reverse" / "sft.jsonl")
    held_out = _held_out()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.partial_lr, weight_decay=0.0)
    total = recipe.partial_schedule_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 30) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    batches = _completion_batches(tokenizer, rows, recipe.partial_batch, recipe.seed)
    score = 0.0
    for step in range(1, recipe.partial_max_steps + 1):
        input_ids, labels, mask = next(batches)
        model.train()
        train_step(model, optimizer, schedule, input_ids, mask, labels)
        if step >= 50 and step % 10 == 0:
            score = reverse_score(model, tokenizer, held_out, max_new_tokens=16)
            if PARTIAL_RANGE[0] <= score <= PARTIAL_RANGE[1]:
                return step, score
            if score > PARTIAL_RANGE[1]:
                break
    raise RuntimeError(
        f"the partly trained tiny model ended at exact match {score:.2f}, outside {PARTIAL_RANGE}"
    )


def _held_out() -> list[dict[str, Any]]:
    from workers.training import heldout

    return heldout.select_rows(DEMO / "reverse" / "eval.jsonl")


def reverse_score(model: Any, tokenizer: Any, rows: list[dict[str, Any]], max_new_tokens: int = 24) -> float:
    """Held-out exact match on the reverse task, by the one held-out function every job uses."""
    from workers.training import heldout

    result = heldout.score(model, tokenizer, rows, "exact_match", {}, max_new_tokens=max_new_tokens)
    return result.mean if result is not None else 0.0


def save(model: Any, tokenizer: Any, folder: Path, meta: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "atelier.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def build_base(recipe: TinyRecipe) -> tuple[Any, Any, float]:
    """Tokenizer, network and pre-training: the base model, in memory."""
    _seed(recipe.seed)
    tokenizer = build_tokenizer(recipe)
    model = build_model(recipe, tokenizer)
    return model, tokenizer, _pretrain(model, tokenizer, recipe)


def install_shipped(out: Path) -> list[str]:
    """Copy the shipped variants (the judge and the teacher) into `out` where they are missing or another version; the
    variants copied. Their tokenizer is the one this build makes (seeded), so they are checked against
    `partial`'s before they are used."""
    import shutil

    copied = []
    for variant, source in SHIPPED.items():
        if not (source / "model.safetensors").is_file():
            continue
        target = out / variant
        if (target / "atelier.json").is_file() and (target / "atelier.json").read_bytes() == (
            source / "atelier.json"
        ).read_bytes():
            continue
        if (source / "tokenizer.json").read_bytes() != (out / "partial" / "tokenizer.json").read_bytes():
            raise RuntimeError(f"the shipped {variant} was trained with another tokenizer: rebuild it")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target.with_name(target.name + ".copying"), dirs_exist_ok=True)
        target.with_name(target.name + ".copying").rename(target)
        copied.append(variant)
    return copied


def is_built(out: Path) -> bool:
    try:
        meta = json.loads((out / "partial" / "atelier.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("build_version") == BUILD_VERSION


# The built-in model is built with this many torch threads whatever the machine or its OMP_NUM_THREADS
# (the test run sets 1): a matrix product's sums depend on how the threads split it, so a build with one
# thread is another model (reverse exact match 0.42, not 0.36), and the numbers the tests and the README
# give are of this build.
BUILD_THREADS = 2


def build(out: Path, recipe: TinyRecipe | None = None, force: bool = False) -> dict[str, Any]:
    """Build `out/base` and `out/partial`; skip when a build of this version is there already."""
    recipe = recipe or TinyRecipe()
    if is_built(out) and not force:
        install_shipped(out)
        return json.loads((out / "partial" / "atelier.json").read_text())
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(BUILD_THREADS)
    try:
        return _build(out, recipe)
    finally:
        torch.set_num_threads(threads)


def _build(out: Path, recipe: TinyRecipe) -> dict[str, Any]:
    started = time.monotonic()
    model, tokenizer, pretrain_loss = build_base(recipe)
    base_score = reverse_score(model, tokenizer, _held_out())
    params = sum(p.numel() for p in model.parameters())
    common = {"build_version": BUILD_VERSION, "recipe": asdict(recipe), "parameters": params}
    tmp = out.with_name(out.name + ".building")
    save(
        model,
        tokenizer,
        tmp / "base",
        {
            **common,
            "variant": "base",
            "pretrain_loss": round(pretrain_loss, 4),
            "reverse_exact_match": base_score,
        },
    )
    steps, partial_score = _partly_train(model, tokenizer, recipe)
    save(
        model,
        tokenizer,
        tmp / "partial",
        {**common, "variant": "partial", "sft_steps": steps, "reverse_exact_match": partial_score},
    )
    # Whole or nothing: a build killed half way leaves no folder that looks finished.
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    install_shipped(out)
    meta = json.loads((out / "partial" / "atelier.json").read_text())
    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["base_reverse_exact_match"] = base_score
    return meta
