"""Graders: plain functions `(completions, **columns) -> list[float]` that score completions against a
row's reference columns, each score in [0, 1]. The same functions are RLVR's rewards in training and
pass rates in evaluation reports. `make(name, **options)` gives a grader by name, configured.

Completions may be text or chat messages (TRL passes `[{"role": "assistant", "content": ...}]` for chat
prompts); `text()` turns either into text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

Grader = Callable[..., list[float]]


def text(completion: Any) -> str:
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict)).strip()
    return str(completion).strip()


def _normalize(value: Any) -> str:
    return " ".join(str(value).split()).casefold()


def exact_match(completions: Sequence[Any], answer: Sequence[Any], **_: Any) -> list[float]:
    """1 when the completion equals the answer, ignoring case and runs of white space."""
    return [float(_normalize(text(c)) == _normalize(a)) for c, a in zip(completions, answer, strict=True)]


def contains(completions: Sequence[Any], answer: Sequence[Any], **_: Any) -> list[float]:
    """1 when the answer appears anywhere in the completion (case-insensitive)."""
    return [float(_normalize(a) in _normalize(text(c))) for c, a in zip(completions, answer, strict=True)]


def math_match(completions: Sequence[Any], answer: Sequence[Any], **_: Any) -> list[float]:
    """1 when the completion's final answer equals the reference as mathematics (19, 19.0 and
    \\frac{38}{2} agree), by Hugging Face's math-verify."""
    from math_verify import parse, verify

    scores = []
    for completion, reference in zip(completions, answer, strict=True):
        try:
            scores.append(float(verify(parse(str(reference)), parse(text(completion)))))
        except Exception:  # noqa: BLE001 - an answer that cannot be parsed is simply wrong
            scores.append(0.0)
    return scores


def regex(completions: Sequence[Any], *, pattern: str, **_: Any) -> list[float]:
    """1 when the whole completion matches the pattern (Python regular expression)."""
    compiled = re.compile(pattern, re.DOTALL)
    return [float(compiled.fullmatch(text(c)) is not None) for c in completions]


def json_schema(completions: Sequence[Any], *, schema: dict[str, Any] | str, **_: Any) -> list[float]:
    """1 when the completion is JSON that is valid against the schema."""
    import jsonschema

    checker = jsonschema.Draft202012Validator(json.loads(schema) if isinstance(schema, str) else schema)
    scores = []
    for completion in completions:
        try:
            scores.append(float(checker.is_valid(json.loads(text(completion)))))
        except ValueError:
            scores.append(0.0)
    return scores


TRL_KEYWORDS = frozenset({"prompts", "completion_ids", "trainer_state", "log_extra", "log_metric"})


def python(completions: Sequence[Any], *, code: str, **columns: Any) -> list[float]:
    """The user's own `grade(completion, **row) -> float`, run in the sandbox (sandbox.py)."""
    from workers.training.graders.sandbox import run_python_grader

    # TRL also passes its own lists (prompts, completion_ids); the row holds the dataset's columns and the
    # prompt as text.
    own = {k: v for k, v in columns.items() if k not in TRL_KEYWORDS and isinstance(v, list | tuple)}
    prompts = columns.get("prompts")
    rows = [
        {
            **({"prompt": text(prompts[i])} if isinstance(prompts, list | tuple) else {}),
            **{k: v[i] for k, v in own.items()},
        }
        for i in range(len(completions))
    ]
    return run_python_grader(code, [text(c) for c in completions], rows)


# Bounds on what a person may type as a grader's options. A schema nested 200,000 deep overflowed the
# stack (a 500 on the form); far below these, real schemas and patterns fit with room to spare.
MAX_PATTERN_CHARS = 2_000
MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32


class GraderOptionError(ValueError):
    """A grader option that cannot work, worded for the person who typed it."""


def depth(value: Any) -> int:
    """How deeply a parsed JSON value nests, counted without recursion (so any depth is safe)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def check_pattern(pattern: Any) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise GraderOptionError("The regex grader needs a pattern.")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise GraderOptionError(f"The pattern is {len(pattern):,} characters; at most {MAX_PATTERN_CHARS:,}.")
    try:
        re.compile(pattern, re.DOTALL)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise GraderOptionError(f"This is not a valid regular expression: {exc.msg}{where}.") from exc
    except RecursionError as exc:
        raise GraderOptionError("This regular expression nests too deeply.") from exc


def check_schema(schema: Any) -> None:
    """A JSON schema that is small, shallow and valid against its metaschema (Draft 2020-12)."""
    import jsonschema

    if isinstance(schema, str):
        if len(schema.encode()) > MAX_SCHEMA_BYTES:
            raise GraderOptionError(f"The schema is over {MAX_SCHEMA_BYTES // 1024} KB.")
        try:
            schema = json.loads(schema)
        except (ValueError, RecursionError) as exc:
            raise GraderOptionError("The schema is not valid JSON.") from exc
    if not isinstance(schema, dict | bool):
        raise GraderOptionError("A JSON schema is an object (or true or false).")
    if depth(schema) > MAX_SCHEMA_DEPTH:
        raise GraderOptionError(f"The schema nests deeper than {MAX_SCHEMA_DEPTH} levels.")
    if len(json.dumps(schema).encode()) > MAX_SCHEMA_BYTES:
        raise GraderOptionError(f"The schema is over {MAX_SCHEMA_BYTES // 1024} KB.")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(map(str, exc.absolute_path))
        raise GraderOptionError(
            f"This is not a valid JSON schema{f' (at {at})' if at else ''}: {exc.message}"
        ) from exc


# Each grader's options, as a small dataclass: the wizard's RLVR form and the evaluation form are both
# generated from it (apps/core/forms.grader_option_fields). Metadata: "label", "help", "kind" ("text",
# "json" or "code"), "max_chars", and "check" (raises GraderOptionError with a person's message).
@dataclass(frozen=True)
class RegexOptions:
    pattern: str = field(
        default="",
        metadata={"label": "Regex pattern", "help": "The whole answer must match it (Python regular expression).",
                  "kind": "text", "max_chars": MAX_PATTERN_CHARS, "check": check_pattern},
    )  # fmt: skip


@dataclass(frozen=True)
class SchemaOptions:
    schema: Any = field(
        default=None,
        metadata={"label": "JSON schema", "help": "The answer must be JSON valid against it (Draft 2020-12).",
                  "kind": "json", "check": check_schema},
    )  # fmt: skip


@dataclass(frozen=True)
class PythonOptions:
    code: str = field(
        default="",
        metadata={"label": "Python grader", "help": "def grade(completion, **row) -> float; runs in a sandbox "
                  "without network.", "kind": "code"},
    )  # fmt: skip


@dataclass(frozen=True)
class GraderInfo:
    """A grader as every layer knows it: its function, its label, the reference columns it needs, and
    its options (None: it has none)."""

    name: str
    label: str
    score: Grader
    needs: tuple[str, ...] = ()
    options: type | None = None

    def option_fields(self) -> tuple[Any, ...]:
        return fields(self.options) if self.options else ()


REGISTRY: dict[str, GraderInfo] = {
    g.name: g
    for g in (
        GraderInfo("exact_match", "Exact match", exact_match, needs=("answer",)),
        GraderInfo("contains", "Contains the answer", contains, needs=("answer",)),
        GraderInfo("math_match", "Math match", math_match, needs=("answer",)),
        GraderInfo("regex", "Matches the pattern", regex, options=RegexOptions),
        GraderInfo("json_schema", "Valid against the JSON schema", json_schema, options=SchemaOptions),
        GraderInfo("python", "Python grader", python, options=PythonOptions),
    )
}


def check_options(options: Any) -> None:
    """Grader options as RLVR's `grader_options` holds them ({grader: {option: value}}), checked before
    a job runs, so a bad pattern or schema is refused on the form rather than in the finished report."""
    if not isinstance(options, dict):
        raise GraderOptionError('Options are an object by grader, e.g. {"regex": {"pattern": "\\d+"}}.')
    for name, values in options.items():
        if name not in REGISTRY:
            raise GraderOptionError(f"There is no grader “{name}”: choose among {', '.join(REGISTRY)}.")
        if not isinstance(values, dict):
            raise GraderOptionError(f'The options of {name} are an object, e.g. {{"pattern": "..."}}.')
        known = {f.name: f for f in REGISTRY[name].option_fields()}
        if unknown := set(values) - set(known):
            raise GraderOptionError(f"{REGISTRY[name].label} has no option {', '.join(sorted(unknown))}.")
        for option, f in known.items():
            if "check" in f.metadata and option in values:
                f.metadata["check"](values[option])


def missing_option(name: str, options: dict[str, Any]) -> str | None:
    """The option a grader cannot run without that `options` lacks, or None."""
    return next((f.name for f in REGISTRY[name].option_fields() if options.get(f.name) in (None, "")), None)


def make(name: str, **options: Any) -> Grader:
    """A grader by name with its options bound (pattern, schema, code), named for TRL's reward logs."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown grader “{name}”: choose one of {', '.join(REGISTRY)}.")
    if name == "python":
        from workers.training.graders.sandbox import require_safe

        require_safe()  # refused before training or trying starts, on a host whose sandbox cannot hold
    grader = partial(REGISTRY[name].score, **options) if options else REGISTRY[name].score
    # TRL names each reward function's metric after __name__; a partial has none.
    wrapped: Any = lambda completions, **columns: grader(completions, **columns)  # noqa: E731
    wrapped.__name__ = name
    return wrapped
