"""Regenerate the demo datasets in demo/: small tasks that show each technique, with held-out splits.

- reverse: "reverse: c a t" -> "t a c". SFT (chat messages: every other word of the corpus and 3,000
  random letter strings; with only 400 words the tiny model memorised them, training loss 0.04 with
  held-out exact match stuck near 0.4, while this variety lets it generalise past 0.9), DPO
  (prompt/chosen/rejected) and RLVR (prompt + answer) on 400 words, and a held-out eval split of 50
  words never seen in training.
- add: "add: 12 + 7" -> "19". SFT (prompt/completion), RLVR (prompt + answer, graded numerically), eval.
- parity: "even or odd: 4 7 1" -> "odd". SFT (prompt/completion) on 2,000 numbers and an eval split of 50
  others: a labelling task, answered in one word. LoRA teaches it to the untrained base (0.00 -> 1.00 in
  150 steps); the reverse task needs the model to copy letters from its prompt, which only full
  fine-tuning builds into the 1.1M-parameter base.

Deterministic (seeded); the files are committed, so builds and tests do not depend on this script.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

HERE = Path(__file__).parent
DEMO = HERE / "demo"


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def reverse() -> None:
    corpus = (HERE / "corpus.txt").read_text()
    words = sorted(set(re.findall(r"\b[a-z]{3,6}\b", corpus)))
    rng = random.Random(1234)
    rng.shuffle(words)
    held_out, train = words[:50], words[50:450]

    def spaced(word: str) -> str:
        return " ".join(word)

    def prompt(word: str) -> str:
        return f"reverse: {spaced(word)}"

    strings = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 6)))
        for _ in range(3000)
    ]
    sft_words = [w for w in words[50:] + strings if w not in set(held_out)]
    rng.shuffle(sft_words)
    _write(
        DEMO / "reverse" / "sft.jsonl",
        [{"messages": _user(prompt(w)) + _assistant(spaced(w[::-1]))} for w in sft_words],
    )
    dpo = []
    for i, w in enumerate(train):
        if i % 2 == 0:
            wrong = w  # the commonest failure: copying instead of reversing
        else:
            letters = list(w[::-1])
            letters[0], letters[-1] = letters[-1], letters[0]
            wrong = "".join(letters) if "".join(letters) != w[::-1] else w
        dpo.append(
            {
                "prompt": _user(prompt(w)),
                "chosen": _assistant(spaced(w[::-1])),
                "rejected": _assistant(spaced(wrong)),
            }
        )
    _write(DEMO / "reverse" / "dpo.jsonl", dpo)
    _write(
        DEMO / "reverse" / "rlvr.jsonl",
        [{"prompt": _user(prompt(w)), "answer": spaced(w[::-1])} for w in train],
    )
    _write(
        DEMO / "reverse" / "eval.jsonl",
        [{"prompt": _user(prompt(w)), "answer": spaced(w[::-1])} for w in held_out],
    )


def add() -> None:
    rng = random.Random(99)
    pairs = sorted({(rng.randint(0, 49), rng.randint(0, 49)) for _ in range(1000)})
    rng.shuffle(pairs)
    held_out, train = pairs[:50], pairs[50:450]
    _write(
        DEMO / "add" / "sft.jsonl",
        [{"prompt": _user(f"add: {a} + {b}"), "completion": _assistant(str(a + b))} for a, b in train],
    )
    _write(
        DEMO / "add" / "rlvr.jsonl",
        [{"prompt": _user(f"add: {a} + {b}"), "answer": str(a + b)} for a, b in train],
    )
    _write(
        DEMO / "add" / "eval.jsonl",
        [{"prompt": _user(f"add: {a} + {b}"), "answer": str(a + b)} for a, b in held_out],
    )


def parity() -> None:
    rng = random.Random(7)
    numbers = rng.sample(range(100, 100_000), 2050)

    def prompt(n: int) -> list[dict]:
        return _user(f"even or odd: {' '.join(str(n))}")

    def label(n: int) -> str:
        return "even" if n % 2 == 0 else "odd"

    _write(
        DEMO / "parity" / "sft.jsonl",
        [{"prompt": prompt(n), "completion": _assistant(label(n))} for n in numbers[:2000]],
    )
    _write(
        DEMO / "parity" / "eval.jsonl", [{"prompt": prompt(n), "answer": label(n)} for n in numbers[2000:]]
    )


if __name__ == "__main__":
    reverse()
    add()
    parity()
