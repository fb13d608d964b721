"""Datasets: reading JSONL, CSV and Parquet, validating rows against a technique's columns, and
turning them into what TRL's trainers take. Each problem names the line (1-based, as in an editor)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.training.techniques.base import CHAT, LABEL, label_value


class DataError(ValueError):
    """A dataset that cannot be used, with a message a person understands."""


@dataclass
class Validation:
    rows: list[dict[str, Any]] = field(default_factory=list)  # the good rows
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, message)
    columns: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)


def read_rows(path: Path | str) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"No dataset file at {path}.")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"Line {number} of {path.name} is not valid JSON: {exc.msg}.") from exc
            if not isinstance(row, dict):
                raise DataError(f"Line {number} of {path.name} is not a JSON object.")
            rows.append(row)
        return rows
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise DataError(f"{path.name}: Atelier reads .jsonl, .csv and .parquet files.")


def _is_chat(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value
        )
    )


def _text_or_chat(value: Any) -> bool:
    return (isinstance(value, str) and value.strip() != "") or _is_chat(value)


def _problem(kind: str, column: str, value: Any) -> str | None:
    """Why a cell does not hold what its column's kind needs (techniques.base), or None."""
    if kind == CHAT:
        if not _is_chat(value):
            return f"“{column}” must be a list of {{role, content}} objects"
        if value[-1]["role"] != "assistant":
            return "the last message must be the assistant's answer"
    elif kind == LABEL:
        if label_value(value) is None:
            return f"“{column}” must be true or false (a thumbs-up or down), not {str(value)[:20]!r}"
    elif not _text_or_chat(value):
        return f"“{column}” is empty or not text"
    return None


def validate(
    rows: list[dict[str, Any]], technique: str, column_map: dict[str, str] | None = None
) -> Validation:
    """Check every row against the technique's columns; keep the good rows (labels as booleans), name
    the bad ones."""
    from workers.training.techniques import REGISTRY

    if technique not in REGISTRY:
        raise DataError(f"Unknown technique “{technique}”: choose one of {', '.join(REGISTRY)}.")
    if not rows:
        raise DataError("The dataset is empty: it has no rows.")
    described = REGISTRY[technique]
    mapping = column_map or {}
    rows = [{mapping.get(k, k): v for k, v in row.items()} for row in rows]
    present = set().union(*(row.keys() for row in rows))
    shape = next((f for f in described.formats if set(f.columns) <= present), None)
    if shape is None:
        raise DataError(
            f"A {described.short} dataset needs the columns {described.columns_wanted()}; this one has "
            f"{', '.join(sorted(present)) or 'none'}. Rename or map the columns."
        )
    result = Validation(columns=shape.columns)
    for number, row in enumerate(rows, start=1):
        problem = None
        for column in shape.columns:
            if problem := _problem(shape.kind(column), column, row.get(column)):
                break
        if problem:
            result.errors.append((number, problem))
        else:
            labels = {c: label_value(row[c]) for c in shape.columns if shape.kind(c) == LABEL}
            result.rows.append({**row, **labels} if labels else row)
    return result


def load(
    path: Path | str, technique: str, column_map: dict[str, str] | None = None, drop_bad: bool = False
) -> list[dict[str, Any]]:
    """Rows ready for training; a DataError naming the first bad lines unless drop_bad."""
    check = validate(read_rows(path), technique, column_map)
    if check.errors and not drop_bad:
        shown = "; ".join(f"line {n}: {m}" for n, m in check.errors[:5])
        more = f" (and {len(check.errors) - 5} more)" if len(check.errors) > 5 else ""
        raise DataError(f"{len(check.errors)} bad rows in {Path(path).name}: {shown}{more}.")
    if not check.rows:
        raise DataError("No usable rows are left in the dataset.")
    return check.rows


def as_chat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose prompt, completion, chosen or rejected is plain text, as chat turns (the prompt the
    user's, the answers the assistant's): for a model with a chat template, so that training sees each
    row through the template as the Data step's preview shows it, and as the held-out scoring and the
    endpoint ask the model. TRL would otherwise train plain-text rows without the template."""
    roles = {"prompt": "user", "completion": "assistant", "chosen": "assistant", "rejected": "assistant"}
    return [
        {
            k: [{"role": roles[k], "content": v}] if k in roles and isinstance(v, str) else v
            for k, v in row.items()
        }
        for row in rows
    ]


def for_model(rows: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """The rows as training feeds them to this tokenizer's model: as_chat where it has a chat template."""
    return as_chat(rows) if getattr(tokenizer, "chat_template", None) else rows


def _chat(value: Any) -> list[dict[str, str]]:
    return value if isinstance(value, list) else [{"role": "user", "content": str(value)}]


def _last_text(value: Any) -> str:
    return str(value[-1]["content"]) if isinstance(value, list) else str(value)


def eval_row(row: dict[str, Any]) -> dict[str, Any] | None:
    """A row of any technique's format as a held-out row: {"prompt": chat, "answer": reference text, ...
    the row's other columns (a grader's references, a rubric)}. No "answer" when the row has none (RLAIF
    prompts); None when it has no prompt at all."""
    rest = {
        k: v for k, v in row.items() if k not in ("messages", "prompt", "completion", "chosen", "rejected")
    }
    if _is_chat(row.get("messages")):
        return {**rest, "prompt": row["messages"][:-1], "answer": row["messages"][-1]["content"]}
    if not _text_or_chat(row.get("prompt")):
        return None
    prompt = _chat(row["prompt"])
    for key in ("completion", "chosen"):
        if _text_or_chat(row.get(key)):
            return {**rest, "prompt": prompt, "answer": _last_text(row[key])}
    if row.get("answer") not in (None, ""):
        return {**rest, "prompt": prompt, "answer": str(row["answer"])}
    return {**rest, "prompt": prompt}
