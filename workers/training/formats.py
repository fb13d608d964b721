"""The dataset formats people bring from other tools, recognised from their columns and converted, row by
row, to the columns Atelier's techniques read (techniques.base: messages, prompt, completion, chosen,
rejected, label, and the graders' reference column answer). One function, `convert`, is applied wherever
a dataset is read: the Data step's checks and preview, the launch, the held-out rows, an evaluation.

A person's own mapping (the Data step's table: which file column each needed column comes from) comes
first; a file whose columns are then already Atelier's is taken as it is; otherwise the first format below
whose columns the file has converts it, and the Data step says which and how. The person can choose
another format, or none ("as is").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

AUTO = "auto"  # recognise the format from the columns
AS_IS = "as-is"  # no conversion: the columns as the file (and the mapping) name them

# Every column a technique or a grader reads; the mapping table offers each.
TARGETS = ("messages", "prompt", "completion", "chosen", "rejected", "label", "answer", "rubric")
ROLES = ("system", "user", "assistant", "tool")
# ShareGPT's speakers (and the other names seen in the wild) as chat roles
SPEAKERS = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
    "bing": "assistant", "bard": "assistant", "model": "assistant", "system": "system", "tool": "tool",
    "function_call": "assistant", "observation": "tool", "function": "tool",
}  # fmt: skip


class FormatError(ValueError):
    """A row that its format cannot convert, with what is wrong in it."""


def blank(value: Any) -> bool:
    """None, NaN (as pandas and Excel write empty cells) or white space only."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _text(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if blank(value):
        raise FormatError(f"“{column}” is empty")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise FormatError(f"“{column}” is not text")
    return str(value)


def _rest(row: dict[str, Any], used: Iterable[str]) -> dict[str, Any]:
    used = set(used)
    return {k: v for k, v in row.items() if k not in used}


def _instruction(extra: str, answer: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Alpaca's and Dolly's rows: the instruction and its optional extra text (Alpaca's input, Dolly's
    context) as the prompt, the answer column as the completion."""

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        prompt = _text(row, "instruction")
        if not blank(row.get(extra)):
            prompt = f"{prompt}\n\n{_text(row, extra)}"
        return {
            **_rest(row, ("instruction", extra, answer)),
            "prompt": prompt,
            "completion": _text(row, answer),
        }

    return convert


def _pair(
    prompt: str, completion: str, keep: tuple[str, ...] = ()
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def convert(row: dict[str, Any]) -> dict[str, Any]:
        out = {
            **_rest(row, (prompt, completion)),
            "prompt": _text(row, prompt),
            "completion": _text(row, completion),
        }
        for column in keep:  # question/answer: the answer is also the graders' reference
            out[column] = row[completion]
        return out

    return convert


def sharegpt_messages(turns: Any) -> list[dict[str, str]]:
    """ShareGPT's [{from, value}] turns as chat messages; FormatError names the turn that is not one."""
    if not isinstance(turns, list) or not turns:
        raise FormatError("“conversations” must be a list of {from, value} turns")
    messages = []
    for number, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            raise FormatError(f"turn {number} of “conversations” is not an object")
        speaker = turn.get("from", turn.get("role"))
        value = turn.get("value", turn.get("content"))
        role = SPEAKERS.get(str(speaker).lower()) if isinstance(speaker, str) else None
        if role is None:
            raise FormatError(
                f"turn {number} of “conversations” is from {speaker!r}; expected one of human, gpt, system"
            )
        if not isinstance(value, str):
            raise FormatError(f"turn {number} of “conversations” has no text “value”")
        messages.append({"role": role, "content": value})
    return messages


def _sharegpt(row: dict[str, Any]) -> dict[str, Any]:
    return {**_rest(row, ("conversations",)), "messages": sharegpt_messages(row.get("conversations"))}


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


# Where a transcript's last turn begins, searched backwards in the shared prefix (HH-RLHF writes
# "\n\nHuman: …\n\nAssistant: …").
TURN_MARKERS = ("\n\nAssistant:", "\nAssistant:", "Assistant:", "<|im_start|>assistant\n", "### Response:")


def split_prefix(chosen: Any, rejected: Any) -> tuple[Any, Any, Any]:
    """(prompt, chosen, rejected) of preference data whose prompt is inside both answers (TRL's
    "implicit prompt" format): message lists split at their last shared message, texts after the last
    assistant marker of their shared beginning (or its last white space)."""
    if isinstance(chosen, list) and isinstance(rejected, list):
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
            n += 1
        if n == 0:
            raise FormatError("“chosen” and “rejected” share no first message to take as the prompt")
        return chosen[:n], chosen[n:], rejected[n:]
    if isinstance(chosen, str) and isinstance(rejected, str):
        shared = chosen[: _common_prefix(chosen, rejected)]
        cut = -1
        for marker in TURN_MARKERS:
            at = shared.rfind(marker)
            if at >= 0:
                cut = at + len(marker)
                break
        if cut < 0:
            cut = max(shared.rfind(" "), shared.rfind("\n")) + 1
        prompt = chosen[:cut]
        if not prompt.strip():
            raise FormatError("“chosen” and “rejected” share no beginning to take as the prompt")
        return prompt, chosen[cut:].lstrip(" "), rejected[cut:].lstrip(" ")
    raise FormatError("“chosen” and “rejected” must both be text or both be lists of messages")


def _implicit(row: dict[str, Any]) -> dict[str, Any]:
    for column in ("chosen", "rejected"):
        if blank(row.get(column)) or row.get(column) == []:
            raise FormatError(f"“{column}” is empty")
    prompt, chosen, rejected = split_prefix(row["chosen"], row["rejected"])
    return {**row, "prompt": prompt, "chosen": chosen, "rejected": rejected}


@dataclass(frozen=True)
class Known:
    """A format people export, as Atelier recognises it: the columns that say it is this format, and how
    each row is converted (said on the Data step)."""

    key: str
    label: str
    columns: tuple[str, ...]
    how: str
    convert: Callable[[dict[str, Any]], dict[str, Any]]
    absent: tuple[str, ...] = ()  # columns whose presence says it is another format


KNOWN: dict[str, Known] = {
    k.key: k
    for k in (
        Known("sharegpt", "ShareGPT", ("conversations",),
              "conversations (human → user, gpt → assistant, system → system) → messages", _sharegpt),
        Known("alpaca", "Alpaca", ("instruction", "output"),
              "instruction + input → prompt (user), output → completion (assistant)", _instruction("input", "output")),
        Known("dolly", "Dolly", ("instruction", "response"),
              "instruction + context → prompt (user), response → completion (assistant)", _instruction("context", "response")),
        Known("question-answer", "Question/answer", ("question", "answer"),
              "question → prompt (user), answer → completion (assistant) and the graders' reference answer",
              _pair("question", "answer", keep=("answer",))),
        Known("input-output", "Input/output", ("input", "output"),
              "input → prompt (user), output → completion (assistant)", _pair("input", "output"),
              absent=("instruction",)),
        Known("implicit-preference", "Preference transcripts (implicit prompt)", ("chosen", "rejected"),
              "the beginning chosen and rejected share → prompt, the rest of each → chosen and rejected",
              _implicit, absent=("prompt",)),
    )
}  # fmt: skip

STANDARD = "standard"
STANDARD_HOW = "columns as Atelier and TRL name them: nothing to convert"


def renames(columns: dict[str, str] | None) -> dict[str, str]:
    """The mapping table ({needed column: file column}) as renames of the file's columns."""
    return {source: target for target, source in (columns or {}).items() if source and source != target}


def recognise(present: Iterable[str]) -> str:
    """The format of a file with these columns (after the person's mapping): STANDARD where a technique
    can read them as they are, a key of KNOWN, or AS_IS where none is recognised."""
    present = set(present)
    if "messages" in present or "prompt" in present:
        return STANDARD
    for known in KNOWN.values():
        if set(known.columns) <= present and not (set(known.absent) & present):
            return known.key
    return AS_IS


def describe(key: str) -> tuple[str, str]:
    """(label, how it converts) of a format key."""
    if key in KNOWN:
        return KNOWN[key].label, KNOWN[key].how
    if key == STANDARD:
        return "Atelier/TRL columns", STANDARD_HOW
    return "Not recognised", "the columns as they are"


def choices() -> list[tuple[str, str]]:
    """The format override the Data step offers."""
    return [(AUTO, "Recognise automatically"), (AS_IS, "None: the columns as they are")] + [
        (k.key, k.label) for k in KNOWN.values()
    ]


@dataclass(frozen=True)
class Mapping:
    """How a file's rows become rows the techniques read: the person's column table ({needed: file
    column}) and the format (AUTO, AS_IS or a key of KNOWN). Saved with the dataset and in the draft."""

    columns: dict[str, str]
    format: str = AUTO

    @classmethod
    def of(cls, value: dict[str, Any] | None) -> Mapping:
        value = value or {}
        columns = {str(k): str(v) for k, v in (value.get("columns") or {}).items() if k in TARGETS and v}
        fmt = str(value.get("format") or AUTO)
        return cls(columns, fmt if fmt in (AUTO, AS_IS, *KNOWN) else AUTO)

    def as_dict(self) -> dict[str, Any]:
        return {"columns": dict(self.columns), "format": self.format}

    def resolve(self, file_columns: Iterable[str]) -> str:
        """The format that applies to a file with these columns: the chosen one, or the recognised."""
        if self.format != AUTO:
            return self.format
        renamed = renames(self.columns)
        return recognise(renamed.get(c, c) for c in file_columns)

    def converter(self, file_columns: Iterable[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """row → converted row (FormatError for a row the format cannot convert)."""
        renamed = renames(self.columns)
        known = KNOWN.get(self.resolve(file_columns))

        def convert(row: dict[str, Any]) -> dict[str, Any]:
            if renamed:
                row = {renamed.get(k, k): v for k, v in row.items()}
            return known.convert(row) if known else row

        return convert
