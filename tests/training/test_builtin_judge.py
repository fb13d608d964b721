"""The built-in judge (`atelier-tiny/judge`, workers.training.builtin_judge): what it is taught to answer,
and how often the shipped judge, as tiny.build installs it, agrees with the exact-match grader on words
it never saw, asked exactly as RLAIF and evaluation reports ask (workers.training.judge's requests)."""

from __future__ import annotations

import json
import random
import re

import pytest

from workers.training import builtin_judge, judge, tiny


def _score(reply: str) -> float:
    match = judge.LAST_SCORE.search(reply) or judge.SCORE.search(reply)
    assert match, reply
    return float(match.group(1))


@pytest.mark.parametrize(
    ("answer", "reply", "score"),
    [
        ("e b y a m", "Check: e e b b y y a a m m: right\nScore: 10", 10),
        ("e b y x m", "Check: e e b b y y a x: wrong\nScore: 0", 0),
        ("e b y a x", "Check: e e b b y y a a m x: wrong\nScore: 0", 0),
        ("e b y a m q", "Check: e e b b y y a a m m - q: wrong\nScore: 0", 0),
        ("e b y a", "Check: e e b b y y a a m -: wrong\nScore: 0", 0),
        ("ebyam", "Check: e ebyam: wrong\nScore: 0", 0),
        ("", "Check: e -: wrong\nScore: 0", 0),
    ],
)
def test_the_check_stops_at_the_first_pair_that_differs_and_ends_with_its_mark_and_a_score_the_judge_parses(
    answer, reply, score
):
    assert builtin_judge.check("maybe", answer) == reply
    assert _score(reply) == score
    # The first two stages were taught the check without its mark.
    assert builtin_judge.check("maybe", answer, marked=False) == reply.replace(": right\n", "\n").replace(
        ": wrong\n", "\n"
    )
    assert len(reply) <= judge.SCORE_TOKENS  # every character at most one token: it fits the request's limit


@pytest.mark.parametrize(
    ("first", "second", "verdict"),
    [("t a c", "t a x", "A"), ("c a t", "t a c", "B"), ("t a c", "t a c", "tie"), ("t x c", "c a t", "tie")],
)
def test_a_comparison_checks_both_answers_then_names_the_right_one(first, second, verdict):
    reply = builtin_judge.compare("cat", first, second)
    a, b, last = reply.split("\n")
    assert a == builtin_judge.check("cat", first).split("\n")[0].replace("Check:", "Check A:")
    assert b == builtin_judge.check("cat", second).split("\n")[0].replace("Check:", "Check B:")
    match = judge.VERDICT.search(reply)
    assert last == f"Verdict: {verdict}" and match and match.group(1) == verdict
    longest = builtin_judge.compare("abcdefghijkl", "x " * 12, "y " * 12)
    assert len(longest) <= builtin_judge.COMPARE_TOKENS <= judge.Judge.reason_tokens


def _answers(request: str) -> tuple[str, str]:
    match = re.search(r"Answer A: (.*)\n\nAnswer B: (.*)\n\nWhich", request)
    assert match, request
    return match.group(1), match.group(2)


def test_prose_answers_are_checked_on_their_first_word_and_lose():
    prose = builtin_judge._prose(random.Random(0))
    assert prose[0].isupper() and prose.endswith(".") and len(prose.split()) >= 2
    first = prose.split()[0][:12]
    assert builtin_judge.check("cat", prose) == f"Check: t {first}: wrong\nScore: 0"
    assert builtin_judge.compare("cat", prose, "t a c").endswith("Verdict: B")
    rows = builtin_judge.prose_examples(["cat", "dog"], seed=0)
    assert [r.endswith("Score: 0") for _, r in rows] == [True, True]


def test_the_third_stage_teaches_the_mark_on_answers_wrong_only_in_their_last_letter():
    rows = builtin_judge.last_letter_examples(["cat", "dog"], seed=0)
    scored = [r for _, r in rows if r.startswith("Check:")]
    assert len(scored) == 4 and sum(r.startswith("Check A:") for _, r in rows) == 2  # one comparison a word
    wrong = [r for r in scored if r.endswith("Score: 0")]
    assert len(wrong) == 2 and all(r.endswith(": right\nScore: 10") for r in scored if r not in wrong)
    for word, reply in zip(("cat", "dog"), wrong, strict=True):
        letters = reply.split("\n")[0].removeprefix("Check: ").removesuffix(": wrong").split()
        pairs = list(zip(letters[::2], letters[1::2], strict=True))
        # As long as a right answer's check, every pair equal but the last, whose expected letter is the
        # word's first.
        assert len(pairs) == len(word) and all(e == a for e, a in pairs[:-1])
        assert pairs[-1][0] == word[0] != pairs[-1][1]
    cases = builtin_judge.last_letter_cases()
    assert not set(builtin_judge.training_words()) & {w for w, _ in cases}
    for (word, right), (_, wrong_answer) in zip(cases[::2], cases[1::2], strict=True):
        assert right == " ".join(reversed(word)) and wrong_answer.split()[:-1] == right.split()[:-1]
        assert wrong_answer != right


def test_made_up_wrong_answers_are_wrong_and_near_misses_mostly_one_letter_off():
    rng = random.Random(0)
    words = builtin_judge.training_words()[:200]
    near = [builtin_judge._wrong(w, rng, near=True) for w in words]
    assert all(a != " ".join(reversed(w)) for w, a in zip(words, near, strict=True))
    one_off = sum(abs(len(a.split()) - len(w)) <= 1 for w, a in zip(words, near, strict=True))
    assert one_off / len(words) >= 0.75


def test_the_judge_is_trained_on_the_requests_atelier_sends():
    messages = builtin_judge.request_messages("cat", "t a c", "The letters are reversed.", "score")
    assert messages == judge.score_messages(
        "The letters are reversed.", [{"role": "user", "content": "reverse: c a t"}], "t a c"
    )
    review = builtin_judge.request_messages("cat", "t a c", "r", "review")
    assert review[0]["content"] == judge.REVIEW_SYSTEM and "Reference answer: t a c" in review[1]["content"]
    rows = builtin_judge.pair_examples(["cat"], [["t a x"]], seed=0)
    assert all(r == builtin_judge.compare("cat", *_answers(m[1]["content"])) for m, r in rows)
    assert all(m[0]["content"] == judge.PAIRWISE_SYSTEM and m[1]["content"].endswith("Which answer is better?")
               for m, _ in rows)  # fmt: skip
    assert sorted(r.rsplit(" ", 1)[1] for _, r in rows) == ["A", "B", "tie"]


def test_the_shipped_judge_agrees_with_exact_match_on_held_out_words(tiny_model):
    """Held-out: the words of the eval and RLVR demo files (the judge was trained on the SFT file's,
    without them), each once with its correct reversal and once with a wrong answer the partly trained
    model gave (or a made-up one). A sample of 300 pairs here; atelier.json records all of them.

    The wrong answers are sampled from `partial` as this machine's CPU computes it, so the numbers move
    with the CPU: the judge of the first two stages agreed on 88.6% of score requests on an Intel Xeon
    and 92.4% on an AMD EPYC; with the mark taught, 97.4% on the AMD EPYC (atelier.json), and it names
    the right answer of two in 88.6% of comparisons there (both checks must be right). The bounds leave
    room for another CPU's answers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_model / "judge"
    meta = json.loads((folder / "atelier.json").read_text())
    assert meta["variant"] == "judge" and meta["agreement"]["score"] >= 0.95, meta
    partial = tiny_model / "partial"
    cases = builtin_judge.held_out_cases(
        AutoModelForCausalLM.from_pretrained(partial), AutoTokenizer.from_pretrained(partial)
    )
    held = set(builtin_judge.training_words()) & {w for w, _ in cases}
    assert not held  # none of the held-out words was trained on
    sample = random.Random(0).sample(cases, 300)
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    result = builtin_judge.agreement(model, tokenizer, sample, "score")
    assert result["parsed"] == 1.0
    assert result["agreement"] >= 0.9, result["misses"]
    # Comparisons as an evaluation report asks them: each word's right and wrong answer in both orders.
    pairs = builtin_judge.pair_agreement(model, tokenizer, sample[:200])
    assert pairs["parsed"] == 1.0 and meta["agreement"]["compare"] >= 0.85, meta
    assert pairs["agreement"] >= 0.78, pairs["misses"]
    # Answers wrong only in their last letter, which the judge before the mark passed every time (the
    # right answer of each word beside them: 50%). Made up, so the same on every CPU.
    last = builtin_judge.agreement(model, tokenizer, builtin_judge.last_letter_cases()[:300], "score")
    assert meta["agreement"]["last-letter"] >= 0.85 and last["agreement"] >= 0.8, last["misses"]
    # The longest check (a 12-letter word and one letter more) fits the score request's token limit.
    longest = builtin_judge.check("abcdefghijkl", " ".join("lkjihgfedcbax"))
    assert len(tokenizer(longest + "<|im_end|>")["input_ids"]) <= judge.SCORE_TOKENS


def test_tiny_build_installs_the_shipped_judge_beside_the_others(tiny_model):
    assert (tiny_model / "judge" / "atelier.json").read_bytes() == (
        tiny.SHIPPED["judge"] / "atelier.json"
    ).read_bytes()
    assert tiny.install_shipped(tiny_model) == []  # already there: nothing copied again
