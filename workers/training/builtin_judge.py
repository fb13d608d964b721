"""The built-in judge (`atelier-tiny/judge`): the partly trained tiny model, fully fine-tuned to grade the
reverse demo task in the request format Atelier's judge sends (workers.training.judge: the score request
of RLAIF and the review request of evaluation reports, with any rubric).

A 1.1-million-parameter network cannot compare two spelled words in one step (judges answering with a
single score token agreed with exact match on 42-63% of held-out pairs in our earlier trials), so it
writes its check first, the way a person would: the expected letters beside the answer's, pair by pair,
stopping at the first pair that differs, then that last pair's mark, then the score, e.g.
``Check: e e b b y x: wrong`` then ``Score: 0``. Each step of the check is local (the next letter of the
reversal, the next letter of the answer, are they equal), which the network can learn, and so is the
mark (the two letters just written); the score copies the mark.

Asked to compare two answers (an evaluation report's pairwise judgement), it checks each the same way and
names the one that is right: ``Check A: …``, ``Check B: …``, then ``Verdict: A``, ``B`` or ``tie`` (both
right or both wrong). That is taught in a second stage, from the scoring judge, on comparisons mixed
with the scoring requests again so that scoring is not forgotten.

The first two stages' checks had no mark, and the judge they made passed every answer wrong only in its
last letter (0 of 300 held-out words: ``Check: g g u u b h`` then ``Score: 10`` for "g u h"): a check
that ran the whole word had almost always ended in 10, so the score followed the check's length, not
its last pair, eight tokens back. Taught to end each check with the mark (a third stage, on such near
misses and the earlier requests), it marks and scores them right 74% of the time.

Trained from words of the SFT demo file; agreement is measured on the words of the eval and RLVR files,
which it never saw, with answers that are correct half of the time. Seeded and deterministic.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from workers.training import tiny

RUBRICS = (
    "The answer is correct, complete and concise.",
    "The letters are reversed.",
    "The answer spells the word backwards, letter by letter.",
    "The answer is the request's letters in reverse order.",
    "Correct reversal of the letters, nothing else.",
    "Reward answers that reverse the word exactly.",
)
MISSING = "-"
# A comparison's reply: two checks (each at most about 40 tokens, workers.training.judge.SCORE_TOKENS)
# and the verdict.
COMPARE_TOKENS = 112
LETTERS = "abcdefghijklmnopqrstuvwxyz"
WORD = re.compile(r"reverse:\s*((?:[a-z]\s*)+)$")


@dataclass(frozen=True)
class JudgeRecipe:
    steps: int = 1500
    batch: int = 16
    lr: float = 1e-3
    warmup: int = 50
    seed: int = 0
    samples_per_word: int = 2  # answers of the partly trained model per training word, besides made-up ones
    # The second stage: comparisons of two answers, with the first stage's requests mixed in again.
    pair_steps: int = 1500
    pair_lr: float = 7e-4
    # The third stage: each check ends with its last pair's mark (`learn_the_mark`).
    mark_steps: int = 1000
    mark_lr: float = 7e-4


def word_of(request: str) -> str | None:
    match = WORD.search(request.strip())
    return match.group(1).replace(" ", "") if match else None


def check(word: str, answer: str, marked: bool = True) -> str:
    """The judge's reply to `answer` for the request to reverse `word`: the pairs up to the first that
    differs, the mark of that last pair (`: right` or `: wrong`; not `marked`: none, as the first two
    stages were taught), then the score (10 when every letter matches and both end together, else 0)."""
    expected = list(reversed(word))
    given = answer.split()
    pairs = []
    right = True
    for i in range(max(len(expected), len(given))):
        e = expected[i] if i < len(expected) else MISSING
        a = given[i][:12] if i < len(given) else MISSING
        pairs.append(f"{e} {a}")
        if e != a:
            right = False
            break
    mark = (": right" if right else ": wrong") if marked else ""
    return f"Check: {' '.join(pairs)}{mark}\nScore: {10 if right else 0}"


def compare(word: str, first: str, second: str, marked: bool = True) -> str:
    """The judge's reply when asked which of two answers is better: each answer's check, then the verdict
    (the right one; a tie when both are right or both wrong)."""
    lines, right = [], []
    for label, answer in (("A", first), ("B", second)):
        pairs, score = check(word, answer, marked).split("\n")
        lines.append(pairs.replace("Check:", f"Check {label}:", 1))
        right.append(score == "Score: 10")
    verdict = "tie" if right[0] == right[1] else "A" if right[0] else "B"
    return "\n".join([*lines, f"Verdict: {verdict}"])


def _wrong(word: str, rng: random.Random, near: bool = False) -> str:
    """A made-up wrong answer of the kinds small models give; `near`: one letter off (swapped, changed,
    dropped or added), most of the time."""
    rev = list(reversed(word))
    kind = rng.randrange(4) if near and rng.random() < 0.75 else rng.randrange(9)
    if kind == 0 and len(rev) > 1:  # two neighbours swapped
        i = rng.randrange(len(rev) - 1)
        rev[i], rev[i + 1] = rev[i + 1], rev[i]
    elif kind == 1:  # one letter changed
        i = rng.randrange(len(rev))
        rev[i] = rng.choice([c for c in LETTERS if c != rev[i]])
    elif kind == 2 and len(rev) > 1:  # one letter dropped
        del rev[rng.randrange(len(rev))]
    elif kind == 3:  # one letter added
        rev.insert(rng.randrange(len(rev) + 1), rng.choice(LETTERS))
    elif kind == 4:  # the word itself
        rev = list(word)
    elif kind == 5:  # the reversal, then more
        rev += [rng.choice(LETTERS) for _ in range(rng.randint(1, 12))]
    elif kind == 6:  # stopped short
        rev = rev[: rng.randrange(1, len(rev))] if len(rev) > 1 else [rng.choice(LETTERS)]
    elif kind == 7:  # letters run together
        return "".join(rev)
    else:  # random letters
        rev = [rng.choice(LETTERS) for _ in range(rng.randint(1, 10))]
    answer = " ".join(rev)
    return answer if answer != " ".join(reversed(word)) else _wrong(word, rng, near)


def _prose(rng: random.Random) -> str:
    """A made-up answer in words, as a model that never learned the task writes (the base model answers
    "Return the class. Anames." to "reverse: g o o d"): a few words of the corpus, as a sentence."""
    words = _corpus_words()
    text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 7)))
    return text[0].upper() + text[1:] + "."


@cache
def _corpus_words() -> list[str]:
    return sorted(set(re.findall(r"[A-Za-z]{2,}", (tiny.ASSETS / "corpus.txt").read_text())))


def _request(word: str) -> list[dict[str, str]]:
    """The demo task's request for `word`, as a chat turn."""
    return [{"role": "user", "content": "reverse: " + " ".join(word)}]


def request_messages(word: str, answer: str, rubric: str, kind: str) -> list[dict[str, str]]:
    """Exactly what workers.training.judge sends for a score ("score") or a review ("review" with the
    reference answer, "review-bare" without)."""
    from workers.training import judge

    request = _request(word)
    if kind == "score":
        return judge.score_messages(rubric, request, answer)
    return judge.review_messages(
        rubric, request, answer, " ".join(reversed(word)) if kind == "review" else None
    )


def sampled_answers(
    model: Any, tokenizer: Any, words: list[str], per_word: int, seed: int
) -> list[list[str]]:
    """Answers the model gives when sampled at temperature 1 (as GRPO samples), `per_word` per word."""
    import torch

    torch.manual_seed(seed)
    model.eval()
    tokenizer.padding_side = "left"
    out: list[list[str]] = [[] for _ in words]
    prompts = [
        tokenizer.apply_chat_template(
            _request(w),
            tokenize=False,
            add_generation_prompt=True,
        )
        for w in words
    ]
    with torch.no_grad():
        for start in range(0, len(words), 256):
            batch = tokenizer(
                prompts[start : start + 256], return_tensors="pt", padding=True, add_special_tokens=False
            )
            generated = model.generate(
                **batch, max_new_tokens=16, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                num_return_sequences=per_word, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
            texts = tokenizer.batch_decode(
                generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
            )
            for i, t in enumerate(texts):
                out[start + i // per_word].append(t.strip())
    return out


def examples(words: list[str], sampled: list[list[str]], seed: int, marked: bool = True
             ) -> list[tuple[list[dict[str, str]], str]]:  # fmt: skip
    """(request, reply) pairs, correct and wrong answers balanced, over the three request kinds."""
    rng = random.Random(seed)
    rows = []
    for word, answers in zip(words, sampled, strict=True):
        right = " ".join(reversed(word))
        wrong = [a for a in answers if a and a != right]
        # Near misses weigh most: a judge that copies the answer into its check instead of reversing the
        # request is right on correct answers only, and near misses are what it must tell apart.
        candidates = [
            right,
            right,
            *(wrong[:1] or [_wrong(word, rng, near=True)]),
            _wrong(word, rng, near=True),
        ]
        for answer in candidates:
            kind = rng.choice(("score", "score", "review", "review-bare"))
            rows.append(
                (request_messages(word, answer, rng.choice(RUBRICS), kind), check(word, answer, marked))
            )
    rng.shuffle(rows)
    return rows


def pair_examples(
    words: list[str], sampled: list[list[str]], seed: int, marked: bool = True
) -> list[tuple[list[dict[str, str]], str]]:
    """(comparison request, reply) pairs: per word, the right answer first, then second, then a tie (both
    right, or two different wrong answers), so that A, B and tie are equally common. One wrong answer in
    four is prose (`_prose`), the answer of a base model that an evaluation compares against."""
    from workers.training import judge

    rng = random.Random(seed)
    rows = []
    for word, answers in zip(words, sampled, strict=True):
        right = " ".join(reversed(word))
        wrong = [a for a in answers if a and a != right] or [_wrong(word, rng, near=True)]
        other = _prose(rng) if rng.random() < 0.25 else _wrong(word, rng, near=True)
        request = _request(word)
        tie = (
            (right, right) if rng.random() < 0.5 else (wrong[0], other if other != wrong[0] else right + " x")
        )
        either = [*wrong, other]
        for first, second in ((right, rng.choice(either)), (rng.choice(either), right), tie):
            messages = judge.compare_messages(rng.choice(RUBRICS), request, first, second)
            rows.append((messages, compare(word, first, second, marked)))
    rng.shuffle(rows)
    return rows


def prose_examples(
    words: list[str], seed: int, marked: bool = True
) -> list[tuple[list[dict[str, str]], str]]:
    """Score and review requests whose answer is prose, one per word (the first stage saw none)."""
    rng = random.Random(seed)
    rows = []
    for word in words:
        answer = _prose(rng)
        kind = rng.choice(("score", "score", "review", "review-bare"))
        rows.append((request_messages(word, answer, rng.choice(RUBRICS), kind), check(word, answer, marked)))
    return rows


def pair_agreement(model: Any, tokenizer: Any, cases: list[tuple[str, str]], rubric: str = RUBRICS[0]
                   ) -> dict[str, Any]:  # fmt: skip
    """How often the judge's verdict, asked as workers.training.judge asks, is the one exact match gives,
    on pairs made from held-out (word, answer) cases: each word's right and wrong answer in both orders,
    for every other word the right answer twice (a tie), and for every third the right answer against
    prose in both orders."""
    from workers.training import judge
    from workers.training.generation import generate

    rng = random.Random(1)
    by_word: dict[str, list[str]] = {}
    for word, answer in cases:
        by_word.setdefault(word, []).append(answer)
    pairs: list[tuple[str, str, str]] = []
    for i, (word, answers) in enumerate(by_word.items()):
        right = " ".join(reversed(word))
        wrong = next((a for a in answers if a != right), None)
        if wrong is None:
            continue
        pairs += [(word, right, wrong), (word, wrong, right)]
        if i % 2:
            pairs.append((word, right, right))
        if i % 3 == 0:  # prose against the right answer, as an evaluation's base model answers
            prose = _prose(rng)
            pairs += [(word, right, prose), (word, prose, right)]
    prompts = [judge.compare_messages(rubric, _request(w), a, b) for w, a, b in pairs]
    replies = generate(model, tokenizer, prompts, max_new_tokens=COMPARE_TOKENS, batch_size=64)
    agree = parsed = 0
    misses: list[tuple[str, str, str, str]] = []
    for (word, first, second), reply in zip(pairs, replies, strict=True):
        match = judge.VERDICT.search(reply)
        expected = compare(word, first, second).rsplit("Verdict: ", 1)[1]
        if match:
            parsed += 1
            if (match.group(1) or match.group(2)).lower() == expected.lower():
                agree += 1
                continue
        if len(misses) < 8:
            misses.append((word, first, second, reply))
    return {"n": len(pairs), "agreement": agree / len(pairs), "parsed": parsed / len(pairs), "misses": misses}


def agreement(model: Any, tokenizer: Any, cases: list[tuple[str, str]], kind: str = "score",
              rubric: str = RUBRICS[0]) -> dict[str, Any]:  # fmt: skip
    """How often the judge's parsed score (≥ 5 means right) agrees with exact match on (word, answer)."""
    from workers.training import judge
    from workers.training.generation import generate
    from workers.training.graders import exact_match

    prompts = [request_messages(w, a, rubric, kind) for w, a in cases]
    replies = generate(model, tokenizer, prompts, max_new_tokens=judge.SCORE_TOKENS, batch_size=64)
    truths = exact_match([a for _, a in cases], [" ".join(reversed(w)) for w, _ in cases])
    agree = parsed = 0
    wrong_examples: list[tuple[str, str, str]] = []
    for (word, answer), reply, truth in zip(cases, replies, truths, strict=True):
        match = judge.LAST_SCORE.search(reply) or judge.SCORE.search(reply)
        if match:
            parsed += 1
            if (float(match.group(1)) >= 5) == (truth == 1.0):
                agree += 1
            elif len(wrong_examples) < 8:
                wrong_examples.append((word, answer, reply))
    return {"n": len(cases), "agreement": agree / len(cases), "parsed": parsed / len(cases),
            "misses": wrong_examples}  # fmt: skip


def held_out_cases(model: Any, tokenizer: Any, seed: int = 1) -> list[tuple[str, str]]:
    """The eval and RLVR demo files' words, each with one correct answer and one wrong answer (the
    partly trained model's own when it gave one, else a made-up one): balanced."""
    words = list(dict.fromkeys(_prompt_words("eval.jsonl") + _prompt_words("rlvr.jsonl")))
    sampled = sampled_answers(model, tokenizer, words, 4, seed)
    rng = random.Random(seed)
    cases = []
    for word, answers in zip(words, sampled, strict=True):
        right = " ".join(reversed(word))
        wrong = [a for a in answers if a and a != right]
        cases += [(word, right), (word, wrong[0] if wrong else _wrong(word, rng))]
    return cases


def _last_letter_wrong(word: str, rng: random.Random) -> str:
    """The reversal with its last letter changed: the one wrong answer whose check is as long as a right
    answer's (every pair before the last agrees)."""
    rev = list(reversed(word))
    rev[-1] = rng.choice([c for c in LETTERS if c != rev[-1]])
    return " ".join(rev)


def last_letter_examples(words: list[str], seed: int) -> list[tuple[list[dict[str, str]], str]]:
    """Per word, the right answer and one wrong only in its last letter, as score or review requests, and
    the two compared in one order or the other (marked checks)."""
    from workers.training import judge

    rng = random.Random(seed)
    rows = []
    for word in words:
        right, wrong = " ".join(reversed(word)), _last_letter_wrong(word, rng)
        for answer in (right, wrong):
            kind = rng.choice(("score", "score", "review", "review-bare"))
            rows.append((request_messages(word, answer, rng.choice(RUBRICS), kind), check(word, answer)))
        first, second = (right, wrong) if rng.random() < 0.5 else (wrong, right)
        messages = judge.compare_messages(rng.choice(RUBRICS), _request(word), first, second)
        rows.append((messages, compare(word, first, second)))
    return rows


def _cpu() -> str:
    """This machine's CPU model, as /proc/cpuinfo names it: the held-out wrong answers depend on it."""
    import platform

    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def last_letter_cases(seed: int = 1) -> list[tuple[str, str]]:
    """Held-out words, each with its reversal and with the reversal wrong only in its last letter."""
    rng = random.Random(seed)
    return [(w, a) for w in held_out_words() for a in (" ".join(reversed(w)), _last_letter_wrong(w, rng))]


def _prompt_words(name: str, unique: bool = True) -> list[str]:
    words = []
    for row in tiny.read_jsonl(tiny.DEMO / "reverse" / name):
        prompt = row["messages"][0]["content"] if "messages" in row else row["prompt"]
        w = word_of(prompt if isinstance(prompt, str) else prompt[-1]["content"])
        if w and not (unique and w in words):
            words.append(w)
    return words


def held_out_words() -> list[str]:
    """The words of the eval and RLVR demo files (and DPO's, which are RLVR's): never trained on."""
    return list(
        dict.fromkeys(_prompt_words("eval.jsonl") + _prompt_words("rlvr.jsonl") + _prompt_words("dpo.jsonl"))
    )


def training_words() -> list[str]:
    """The SFT demo file's words (a word there twice is trained on twice), without any held-out word."""
    held = set(held_out_words())
    return [w for w in _prompt_words("sft.jsonl", unique=False) if w not in held]


def build(partial: Path, recipe: JudgeRecipe | None = None, log: Any = None) -> tuple[Any, Any]:
    """The judge, trained from `partial` (in memory)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = recipe or JudgeRecipe()
    tiny._seed(recipe.seed)
    tokenizer = AutoTokenizer.from_pretrained(partial)
    model = AutoModelForCausalLM.from_pretrained(partial)
    words = training_words()
    sampled = sampled_answers(model, tokenizer, words, recipe.samples_per_word, recipe.seed)
    tiny.fine_tune(model, tokenizer, examples(words, sampled, recipe.seed, marked=False), recipe, log)
    learn_to_compare(model, tokenizer, recipe, log, words, sampled)
    learn_the_mark(model, tokenizer, recipe, log, words, sampled)
    return model, tokenizer


def partial_samples(partial: Path, recipe: JudgeRecipe) -> tuple[list[str], list[list[str]]]:
    """The training words and the partly trained model's sampled answers to them: the wrong answers every
    stage trains on (as `build` draws them, whichever stage starts from a saved judge)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tiny._seed(recipe.seed)
    words = training_words()
    model = AutoModelForCausalLM.from_pretrained(partial)
    tokenizer = AutoTokenizer.from_pretrained(partial)
    return words, sampled_answers(model, tokenizer, words, recipe.samples_per_word, recipe.seed)


def learn_to_compare(model: Any, tokenizer: Any, recipe: JudgeRecipe, log: Any = None,
                     words: list[str] | None = None, sampled: list[list[str]] | None = None) -> None:  # fmt: skip
    """The second stage, on the scoring judge (in memory): comparisons, with as many of the first stage's
    requests (drawn again with another seed) mixed in."""
    if words is None or sampled is None:
        words = training_words()
        sampled = sampled_answers(model, tokenizer, words, recipe.samples_per_word, recipe.seed)
    pairs = pair_examples(words, sampled, recipe.seed + 1, marked=False)
    prose = prose_examples(words, recipe.seed + 4, marked=False)[: len(pairs) // 6]
    replay = examples(words, sampled, recipe.seed + 2, marked=False)[: len(pairs) - len(prose)]
    rows = pairs + prose + replay
    random.Random(recipe.seed + 3).shuffle(rows)
    stage = replace(recipe, steps=recipe.pair_steps, lr=recipe.pair_lr, seed=recipe.seed + 1)
    tiny.fine_tune(model, tokenizer, rows, stage, log)


def learn_the_mark(model: Any, tokenizer: Any, recipe: JudgeRecipe, log: Any,
                   words: list[str], sampled: list[list[str]]) -> None:  # fmt: skip
    """The third stage, on the comparing judge (in memory): every check ends with its last pair's mark,
    on `last_letter_examples` and as many of each of the first two stages' requests (drawn again with
    other seeds), and a quarter as many prose answers."""
    last = last_letter_examples(words, recipe.seed + 5)
    rows = (last + examples(words, sampled, recipe.seed + 6)[: len(last)]
            + pair_examples(words, sampled, recipe.seed + 7)[: len(last)]
            + prose_examples(words, recipe.seed + 9)[: len(last) // 4])  # fmt: skip
    random.Random(recipe.seed + 8).shuffle(rows)
    stage = replace(recipe, steps=recipe.mark_steps, lr=recipe.mark_lr, warmup=30, seed=recipe.seed + 2)
    tiny.fine_tune(model, tokenizer, rows, stage, log)


def measure(model: Any, tokenizer: Any, cases: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """The judge's agreement with exact match on held-out `cases` for each request kind, on comparisons
    made of them (`pair_agreement`) and on answers wrong only in their last letter."""
    measured = {kind: agreement(model, tokenizer, cases, kind) for kind in ("score", "review", "review-bare")}
    measured["compare"] = pair_agreement(model, tokenizer, cases)
    measured["last-letter"] = agreement(model, tokenizer, last_letter_cases(), "score")
    return measured


def _rounded(measured: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        "agreement": {kind: round(m["agreement"], 4) for kind, m in measured.items()},
        "parsed": {kind: round(m["parsed"], 4) for kind, m in measured.items()},
    }


def build_and_save(
    partial: Path,
    out: Path,
    recipe: JudgeRecipe | None = None,
    log: Any = None,
    scoring: Path | None = None,
    comparing: Path | None = None,
) -> dict[str, Any]:
    """Train the judge, measure its agreement on held-out pairs for each request kind, save it to `out`
    with the numbers in atelier.json; the meta. With `scoring` (a judge folder of the first stage) only the
    second and third stages are trained, from it; with `comparing` (a judge of the first two stages, such
    as a shipped judge from before the third stage) only the third. Every stage's wrong answers are
    sampled from `partial`."""
    import shutil
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = recipe or JudgeRecipe()
    started = time.monotonic()
    stages: dict[str, Any] = {}
    earlier_model = None
    if scoring is None and comparing is None:
        model, tokenizer = build(partial, recipe, log)
        stages["all"] = round(time.monotonic() - started, 1)
    else:
        earlier_dir = scoring or comparing
        assert earlier_dir is not None
        words, sampled = partial_samples(partial, recipe)
        tiny._seed(recipe.seed)
        model = AutoModelForCausalLM.from_pretrained(earlier_dir)
        tokenizer = AutoTokenizer.from_pretrained(earlier_dir)
        earlier = json.loads((earlier_dir / "atelier.json").read_text())
        earlier_model = AutoModelForCausalLM.from_pretrained(earlier_dir)
        stages = dict(earlier.get("stage_seconds") or {"score": earlier.get("train_seconds")})
        if scoring is not None:
            begun = time.monotonic()
            learn_to_compare(model, tokenizer, recipe, log, words, sampled)
            stages["compare"] = round(time.monotonic() - begun, 1)
        begun = time.monotonic()
        learn_the_mark(model, tokenizer, recipe, log, words, sampled)
        stages["mark"] = round(time.monotonic() - begun, 1)
    cases = held_out_cases(
        AutoModelForCausalLM.from_pretrained(partial), AutoTokenizer.from_pretrained(partial)
    )
    measured = measure(model, tokenizer, cases)
    meta = {
        "variant": "judge",
        "build_version": tiny.BUILD_VERSION,
        "measured_on": _cpu(),
        "recipe": asdict(recipe),
        "train_seconds": round(sum(v or 0 for v in stages.values()), 1),
        "stage_seconds": stages,
        # What it was trained from, when a stage started from a saved judge: that judge measured here on
        # the same cases.
        **({"trained_from": _rounded(measure(earlier_model, tokenizer, cases))} if earlier_model else {}),
        "held_out_pairs": len(cases),
        "held_out_comparisons": measured["compare"]["n"],
        **_rounded(measured),
    }
    shutil.rmtree(out, ignore_errors=True)
    tiny.save(model, tokenizer, out, meta)
    return meta
